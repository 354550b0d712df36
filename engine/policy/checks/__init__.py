"""The checks that span files: what `coopflow check` verifies beyond each file's own shape
(engine.policy.spec). One module per kind of file checked: `config` (config.yaml and the working
calendar), `workflows`, `rules` (schedules and event rules); `base` holds what they share (the
problems found, expressions compiled once per scope, references between files).

`engine.policy.loader` reads the files and runs these checks in one pass.
"""
