"""``hydra/launcher=kfp``: Hydra jobs as Kubeflow Pipelines v2 runs (``kfp.local`` on a laptop, a KFP cluster
remotely). Modules: ``kfp_launcher`` (config + Hydra plugin), ``settings`` and ``checks`` (one-line errors),
``_core`` (compile once, n_jobs job threads), ``jobspec`` (a job's config YAML, run name, task reference),
``pipeline`` (the component), ``job`` (what runs in the container), ``local_backend`` / ``local_run`` and
``remote_backend``, ``results`` (the way back of a job's result), ``errors``, ``proxy`` (Cloud SQL proxy)."""
