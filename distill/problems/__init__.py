"""Problems, shared ground for every stage: sources read with `datasets` (`sources`), named layouts that
map a dataset's rows to the Problem record (`layouts`), mixtures with per-source counts and stable ids
(`mixture`), the `distill data` preview (`preview`), the bundled problem set (`bundled`) and public
benchmarks by name (`benchmarks`)."""
