// Each test starts several worker processes; two tests at once on two cores would only slow both.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
