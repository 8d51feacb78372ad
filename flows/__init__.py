"""Prefect 3 entry points of gsocseq: flows (``flows.gsocseq_flows``), deployments (``flows.serve``).

``params`` holds the typed parameters the UI renders as a form, ``cluster`` the dask runtime choice
and check, ``report`` the markdown run report. No science lives here: every task calls
:mod:`gsocseq.pipeline`.
"""
