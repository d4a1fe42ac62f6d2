"""Problems, shared ground for every stage: the bundled problem set (`bundled`) and public benchmarks
by name (`benchmarks`), each mapped to the Problem record of `distill.records`."""
