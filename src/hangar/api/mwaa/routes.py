"""MWAA REST-JSON routes (botocore's `mwaa` model). Parse, call the domain, serialize.

Every route authenticates with SigV4 (see sigv4.py) and names its operation, so
the audit log records MWAA operation names.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from hangar.api.deps import ContextDep
from hangar.api.mwaa import shapes
from hangar.api.mwaa.sigv4 import verify
from hangar.domain import disclosure, environments, queries, rest_api
from hangar.domain.access import Principal
from hangar.errors import ValidationFailed

router = APIRouter(tags=["mwaa"], include_in_schema=True)


async def caller(request: Request) -> Principal:
    headers = {k.lower(): v for k, v in request.headers.items()}
    raw = request.scope["raw_path"].decode()
    query = request.scope.get("query_string", b"").decode()
    url = f"{request.url.scheme}://{headers.get('host', request.url.netloc)}{raw}" + (f"?{query}" if query else "")
    body = await request.body()
    # the key lookup and decryption block: off the event loop
    principal = await run_in_threadpool(verify, request.app.state.ctx, method=request.method, url=url,
                                        headers=headers, body=body)
    request.state.principal = principal
    return principal


def _require(action: str):
    async def check(who: Principal = Depends(caller)) -> Principal:
        who.require(action)
        return who

    return check


# the SigV4-authenticated caller, once it has been allowed the action
SignedAdmin = Annotated[Principal, Depends(_require("admin"))]
SignedReader = Annotated[Principal, Depends(_require("read"))]
SignedUpdater = Annotated[Principal, Depends(_require("update"))]
SignedLogin = Annotated[Principal, Depends(_require("login"))]


def _name(Name: str) -> str:
    if not 1 <= len(Name) <= 80 or not shapes.re.fullmatch(r"[a-zA-Z][0-9a-zA-Z\-_]*", Name):
        raise ValidationFailed(f"Name {Name!r} must match [a-zA-Z][0-9a-zA-Z-_]* and be 1 to 80 characters")
    return Name


@router.put("/environments/{Name}", name="CreateEnvironment")
def create_environment(body: shapes.CreateEnvironmentInput, Name: str, c: ContextDep, _: SignedAdmin) -> dict:
    environments.create_environment(c, request=shapes.create_request(_name(Name), body))
    return {"Arn": shapes.arn(Name)}


@router.get("/environments/{Name}", name="GetEnvironment")
def get_environment(Name: str, c: ContextDep, who: SignedReader) -> dict:
    found = disclosure.environment_for(queries.get_environment(c, name=_name(Name)), who.role)
    return {"Environment": shapes.environment(found)}


@router.get("/environments", name="ListEnvironments")
def list_environments(
    c: ContextDep, _: SignedReader,
    NextToken: str | None = Query(default=None, max_length=2048),
    MaxResults: int | None = Query(default=None),
) -> dict:
    if MaxResults is not None and not 1 <= MaxResults <= 25:
        raise ValidationFailed(f"MaxResults must be between 1 and 25, not {MaxResults}")
    names = [env.name for env in queries.list_environments(c)]
    if NextToken:
        after = shapes.decode_token(NextToken)
        names = [n for n in names if n > after]
    page = names[: MaxResults or 25]
    result: dict[str, Any] = {"Environments": page}
    if len(names) > len(page):
        result["NextToken"] = shapes.encode_token(page[-1])
    return result


@router.patch("/environments/{Name}", name="UpdateEnvironment")
def update_environment(body: shapes.UpdateEnvironmentInput, Name: str, c: ContextDep, _: SignedUpdater) -> dict:
    current = queries.get_environment(c, name=_name(Name))
    environments.update_environment(c, name=Name, request=shapes.update_request(body, current))
    return {"Arn": shapes.arn(Name)}


@router.delete("/environments/{Name}", name="DeleteEnvironment")
def delete_environment(Name: str, c: ContextDep, _: SignedAdmin) -> dict:
    environments.delete_environment(c, name=_name(Name))
    return {}


@router.post("/webtoken/{Name}", name="CreateWebLoginToken")
def create_web_login_token(Name: str, c: ContextDep, who: SignedLogin) -> dict:
    token = environments.environment_token(c, name=_name(Name), principal=who, valid_for=60, purpose="web")
    return {"WebToken": token.token, "WebServerHostname": shapes.hostname(token.webserver_url),
            "IamIdentity": who.id, "AirflowIdentity": who.id}


@router.post("/clitoken/{Name}", name="CreateCliToken")
def create_cli_token(Name: str, c: ContextDep, who: SignedLogin) -> dict:
    token = environments.environment_token(c, name=_name(Name), principal=who, valid_for=60, purpose="cli")
    return {"CliToken": token.token, "WebServerHostname": shapes.hostname(token.webserver_url)}


@router.post("/restapi/{Name}", name="InvokeRestApi")
def invoke_rest_api(body: shapes.InvokeRestApiInput, Name: str, c: ContextDep, who: SignedLogin) -> dict:
    status, payload = rest_api.invoke(c, name=_name(Name), principal=who, method=body.Method, path=body.Path,
                                      query=body.QueryParameters, body=body.Body)
    return {"RestApiStatusCode": status, "RestApiResponse": payload}


@router.get("/tags/{ResourceArn:path}", name="ListTagsForResource")
def list_tags(ResourceArn: str, c: ContextDep, _: SignedReader) -> dict:
    return {"Tags": queries.get_environment(c, name=shapes.name_from_arn(ResourceArn)).spec.tags}


@router.post("/tags/{ResourceArn:path}", name="TagResource")
def tag_resource(body: shapes.TagResourceInput, ResourceArn: str, c: ContextDep, _: SignedUpdater) -> dict:
    environments.set_tags(c, name=shapes.name_from_arn(ResourceArn), add=body.Tags)
    return {}


@router.delete("/tags/{ResourceArn:path}", name="UntagResource")
def untag_resource(ResourceArn: str, c: ContextDep, _: SignedUpdater,
                   tagKeys: list[str] = Query(default=[])) -> dict:
    if len(tagKeys) > 50:
        raise ValidationFailed(f"tagKeys may name at most 50 keys, not {len(tagKeys)}")
    environments.set_tags(c, name=shapes.name_from_arn(ResourceArn), remove=tagKeys)
    return {}
