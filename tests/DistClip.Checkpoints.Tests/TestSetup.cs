// The file-system tests share temporary roots and a fake clock per test; they are fast enough to
// run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
