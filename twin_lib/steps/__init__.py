"""Pipeline steps: the I/O of one step (read inputs, call pure stages, write outputs, quarantine).

Components and the CLI call these; the stages below (``crawl``, ``quality``, ``features``)
never import a step, so data flows one way.
"""
