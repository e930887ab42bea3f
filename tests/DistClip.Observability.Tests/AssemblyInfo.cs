// One real training run (three processes) and one Prometheus serve every test; two at once on two cores would only slow both.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
