"""Native routes for an environment's DAGs from git: sync now, the push webhook's address and
secret, and the webhook itself (authenticated by its signature, not by an API key)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from hangar.api.auth import principal, require
from hangar.api.deps import ContextDep
from hangar.domain import git_dags

router = APIRouter(prefix="/api/v1", dependencies=[Depends(principal)], tags=["git"])
# the webhook's callers are GitHub and GitLab: admission checks a GitLab token, the route a GitHub signature
hooks = APIRouter(prefix="/api/v1", tags=["git"])


@router.post("/environments/{name}/sync", status_code=202, name="environments.sync",
             dependencies=[Depends(require("update"))])
def sync(name: str, c: ContextDep, accept_rewritten_history: bool = False) -> dict:
    git_dags.request_sync(c, name=name, accept_rewritten_history=accept_rewritten_history)
    return {"sync": "requested"}


@router.post("/environments/{name}/git-webhook-secret", name="environments.git_webhook_secret",
             dependencies=[Depends(require("update"))])
def webhook_settings(name: str, request: Request, c: ContextDep) -> dict:
    """A new webhook secret (the old one stops working) and what to enter in GitHub's or GitLab's
    webhook settings; the secret is shown this once."""
    url = str(request.url_for("environments.git_webhook", name=name))
    return {"url": url, "secret": git_dags.new_webhook_secret(c, name=name), "content_type": "application/json",
            "github": "Payload URL: url; Content type: application/json; Secret: secret; events: push",
            "gitlab": "URL: url; Secret token: secret; Trigger: Push events"}


@hooks.post("/environments/{name}/git-webhook", status_code=202, name="environments.git_webhook")
async def webhook(name: str, request: Request, c: ContextDep) -> dict:
    if not request.headers.get("x-gitlab-token"):  # a GitLab token was checked before the body was read
        body = await request.body()
        git_dags.verify_github_signature(c, name=name, signature=request.headers.get("x-hub-signature-256", ""),
                                         body=body)
    git_dags.request_sync(c, name=name)
    return {"sync": "requested"}
