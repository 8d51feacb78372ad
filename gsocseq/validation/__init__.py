"""Evidence that the model does what it claims: ``gsocseq validation-report DIR``.

:mod:`gsocseq.validation.report` regenerates it (HTML with plots, the numbers as CSV); the official
RothC example it replays ships in ``data/rothc-example/`` (Apache-2.0, Rothamsted Research).
"""
