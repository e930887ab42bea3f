// The learning test measures what a fixed number of steps achieves; other torch tests running
// beside it on two cores would only slow it down.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
