"""The application layer: the ``forensics`` command line and the orchestration behind it.

Typer commands (:mod:`forensics.app.cli`), ``detect``'s entry loop and writers
(:mod:`forensics.app.detect`), ``audit`` (:mod:`forensics.app.audit`), ``verify``'s
dispatch (:mod:`forensics.app.verify`) and the progress display
(:mod:`forensics.app.progress`). It sits above every other package of the repository
(generators, detectors, benchmarks) and imports them lazily; nothing below imports it
(``lint-imports`` checks that in CI).
"""
