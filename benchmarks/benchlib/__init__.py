"""The pieces of the benchmark scripts: where a result was measured (:mod:`.environment`), the Ped2
runs of ``bench.py`` (:mod:`.ped2`), their profiles (:mod:`.profiling`) and the results page's summary
(:mod:`.summary`)."""
