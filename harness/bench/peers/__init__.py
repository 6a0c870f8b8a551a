"""Peer servers in the bench: BentoML, MLServer and KServe serving the bench's VQA and QA models.

Each peer runs in its own virtual environment under the bench cache (``envs.py``, pinned
by ``requirements/<peer>.txt``), because each pins its own FastAPI and pydantic. The
server modules here (``bentoml_service.py``, ``mlserver_runtime.py``, ``kserve_server.py``)
run *inside* those environments, so they import only torch, transformers, numpy and their
own server package, plus ``qa_core.py`` and ``vqa_core.py``.
"""
