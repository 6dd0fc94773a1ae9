"""deploy/compose.yaml checked without containers: every PeroMesh service's command parses with
`peromesh serve`'s own parser (server/cli.py, flags from server/config/flags.py) and its
environment twins are real flags; every address in it (--core-addr, --tts-addr, --db-url,
--cluster-url) names a service of the file, on the port that service listens on, and is waited
for healthy; each server binds off loopback with the token its start demands; health probes and
published ports are the servers' own ports. deploy/healthcheck.py is probed against real servers.

The file is never run here (no compose plugin, no registry), so these checks are what keeps it
right; the mutation tests prove each check fails on the mistake it is for.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML is in the lock, its stubs (types-PyYAML) are not
from grpc_health.v1 import health_pb2
from sqlalchemy.engine import make_url

from bridge import core_targets
from bridge.server import start_bridge
from server.app.settings import MeshSettings
from server.cli import build_parser
from server.config import flags
from server.rpc.auth import is_loopback
from server.rpc.serving import auth_token_for, start_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE = "peromesh:local"
SHELL = {"PEROMESH_TOKEN": "compose-test-token"}  # the shell `up` runs in: only what the file requires
Compose = dict[str, Any]


class ComposeError(AssertionError):
    """What is wrong with the compose file (an AssertionError: pytest shows the message)."""


# Compose's interpolation, which it applies to every value after parsing the YAML:
# $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}.
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name, op, arg = match["name"] or match["bare"], match["op"] or "", match["arg"] or ""
    value = env.get(name)
    if value is not None and not (value == "" and op.startswith(":")):  # ":" also treats empty as unset
        return value
    if op.endswith("?"):
        raise ComposeError(f"${{{name}}} is required: {arg}")
    return arg if op.endswith("-") else ""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def load(env: Mapping[str, str] = SHELL) -> Compose:
    """The file as compose sees it from a shell with `env`: interpolated, and each `environment`
    entry without a value taken from the shell (left out when the shell lacks it)."""
    compose = cast(Compose, interpolate(yaml.safe_load((DEPLOY / "compose.yaml").read_text()), env))
    for service in compose["services"].values():
        given = service.get("environment") or {}
        service["environment"] = {key: env[key] if value is None else value
                                  for key, value in given.items() if value is not None or key in env}
    return compose


def mesh_services(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == IMAGE}


def _twins(parser: Any) -> dict[str, Any]:
    """PEROMESH_<FLAG> → the `serve` action it sets (the naming of flags.apply_environment)."""
    serve = next(a for a in parser._actions if a.dest == "command").choices["serve"]
    return {"PEROMESH_" + opt[2:].upper().replace("-", "_"): action
            for action in serve._actions for opt in action.option_strings if opt.startswith("--")}


def settings_of(name: str, service: Mapping[str, Any]) -> MeshSettings:
    """The typed settings `peromesh <command>` gets in this service's environment."""
    parser = build_parser()
    twins = _twins(parser)
    env = {str(key): str(value) for key, value in service["environment"].items()}
    for key, value in env.items():
        action = twins.get(key) if key.startswith("PEROMESH_") else None
        if key.startswith("PEROMESH_") and action is None:
            raise ComposeError(f"{name}: {key} is no flag's environment twin")
        if action is not None and action.choices and value not in action.choices:
            raise ComposeError(f"{name}: {key}={value!r} is not one of {action.choices}")
    flags.apply_environment(parser, env)
    command = [str(word) for word in service["command"]]
    if command[:1] != ["serve"]:
        raise ComposeError(f"{name}: the command must be `serve …` (the image's entrypoint is peromesh)")
    try:
        return flags.read(MeshSettings, parser.parse_args(command))
    except SystemExit as exc:
        raise ComposeError(f"{name}: peromesh refuses {command} (see the usage above)") from exc


def listening(settings: MeshSettings) -> tuple[str, int]:
    """The one server this service runs, and its port."""
    selected = settings.selected()
    if len(selected) != 1:
        raise ComposeError(f"one server per service, not {selected}")
    ports = {"tts": settings.tts.port, "memory": settings.memory.port, "core": settings.core.port,
             "bridge": settings.bridge.port}
    return selected[0], ports[selected[0]]


def _waits_for(service: Mapping[str, Any], dependency: str) -> bool:
    depends = service.get("depends_on") or {}
    return isinstance(depends, dict) and (depends.get(dependency) or {}).get("condition") == "service_healthy"


def _peer(name: str, service: Mapping[str, Any], compose: Compose, host: str | None, what: str) -> dict[str, Any]:
    peer = compose["services"].get(host)
    if peer is None:
        raise ComposeError(f"{name}: {what} names {host!r}, no service of the file")
    if not _waits_for(service, str(host)) or "healthcheck" not in peer:
        raise ComposeError(f"{name}: {what} {host!r} is not waited for (depends_on: service_healthy)")
    return cast(dict[str, Any], peer)


def check_addresses(name: str, service: Mapping[str, Any], settings: MeshSettings, compose: Compose) -> None:
    mesh = {n: settings_of(n, s) for n, s in mesh_services(compose).items()}
    for server in ("tts", "memory", "core"):
        for address in core_targets.split(settings.address_given(server) or ""):
            host, _, port = address.rpartition(":")
            _peer(name, service, compose, host, f"--{server}-addr")
            if host not in mesh or listening(mesh[host]) != (server, int(port)):
                raise ComposeError(f"{name}: --{server}-addr {address}: {host} does not serve {server} on {port}")
    if settings.common.db_url:
        url = make_url(settings.common.db_url)
        env = _peer(name, service, compose, url.host, "--db-url").get("environment") or {}
        want = (env.get("POSTGRES_USER"), env.get("POSTGRES_PASSWORD"), env.get("POSTGRES_DB"), 5432)
        if (url.username, url.password, url.database, url.port) != want:
            raise ComposeError(f"{name}: --db-url {url!r} is not {url.host}'s user, password, database, port")
    if settings.common.cluster_url:
        url_parts = urlsplit(settings.common.cluster_url)
        _peer(name, service, compose, url_parts.hostname, "--cluster-url")
        if url_parts.scheme != "redis" or url_parts.port != 6379:
            raise ComposeError(f"{name}: --cluster-url {settings.common.cluster_url} is not redis://redis:6379/…")


def check_service(name: str, compose: Compose) -> MeshSettings:
    """Every check of one PeroMesh service; raises ComposeError with what is wrong."""
    service = compose["services"][name]
    settings = settings_of(name, service)
    server, port = listening(settings)
    host = settings.common.host
    if port == 0 or is_loopback(host):
        raise ComposeError(f"{name}: {server} must listen on a fixed port off loopback (--host 0.0.0.0), "
                           f"not {host}:{port}")
    try:
        auth_token_for(host, settings.common.token)  # what the server's own start demands
    except ValueError as exc:
        raise ComposeError(f"{name}: {exc}") from exc
    probe = ["CMD", "python", "deploy/healthcheck.py", "http" if server == "bridge" else "grpc", f"127.0.0.1:{port}"]
    if (service.get("healthcheck") or {}).get("test") != probe:
        raise ComposeError(f"{name}: the health probe must be {probe}")
    for published in service.get("ports") or []:
        if server != "bridge" or str(published).rsplit(":", 1)[-1] != str(port):
            raise ComposeError(f"{name}: publishes {published}, not the bridge port {port}")
    check_addresses(name, service, settings, compose)
    return settings


@pytest.fixture(autouse=True)
def _no_peromesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's own PEROMESH_* variables (a token, say) must not fill what the file lacks."""
    for key in [k for k in os.environ if k.startswith("PEROMESH_")]:
        monkeypatch.delenv(key)


def test_every_service_of_the_file_checks() -> None:
    compose = load()
    settings = {name: check_service(name, compose) for name in mesh_services(compose)}
    servers = sorted(listening(s)[0] for s in settings.values())
    assert servers == ["bridge", "bridge", "core", "core", "tts"]
    cores = {f"{name}:{s.core.port}" for name, s in settings.items() if listening(s)[0] == "core"}
    assert len({s.core.port for s in settings.values() if listening(s)[0] == "core"}) == 2  # each its own port
    bridges = [core_targets.split(s.core.addr or "") for s in settings.values() if listening(s)[0] == "bridge"]
    assert all(set(order) == cores for order in bridges), bridges  # each bridge can fail over to every core
    assert len({order[0] for order in bridges}) == 2, bridges  # and the two start on different cores
    core_settings = [s.common for s in settings.values() if listening(s)[0] == "core"]
    assert len({(c.db_url, c.cluster_url) for c in core_settings}) == 1  # one database, one cluster
    assert all("healthcheck" in compose["services"][infra] for infra in ("postgres", "redis"))


def test_the_token_comes_from_the_shell() -> None:
    with pytest.raises(ComposeError, match="PEROMESH_TOKEN"):
        load({})
    settings = check_service("core1", load({**SHELL, "PEROMESH_LLM": "scripted"}))
    assert settings.common.token == SHELL["PEROMESH_TOKEN"] and settings.core.llm.llm == "scripted"


def _replace(service: str, old: str, new: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        command = compose["services"][service]["command"]
        assert any(old in str(word) for word in command), (service, old)
        compose["services"][service]["command"] = [str(word).replace(old, new) for word in command]
    return mutate


def _env(service: str, key: str, value: str | None, drop: str | None = None) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        env = dict(compose["services"][service]["environment"])
        env.pop(drop or "", None)
        env[key] = value
        compose["services"][service]["environment"] = env
    return mutate


def _drop_dependency(service: str, dependency: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        del compose["services"][service]["depends_on"][dependency]
    return mutate


MISTAKES: dict[str, tuple[str, Callable[[Compose], None], str]] = {
    "misspelled flag": ("core1", _replace("core1", "--core-port", "--core-prot"), "refuses"),
    "misspelled environment twin": ("core1", _env("core1", "PEROMESH_LMM", "scripted"), "no flag's"),
    "no such choice": ("core2", _env("core2", "PEROMESH_LLM", "gpt"), "not one of"),
    "bound to loopback": ("tts", _replace("tts", "0.0.0.0", "127.0.0.1"), "off loopback"),
    "no token": ("bridge1", _env("bridge1", "PEROMESH_LOG_LEVEL", "INFO", drop="PEROMESH_TOKEN"), "without a token"),
    "unknown core": ("bridge1", _replace("bridge1", "core2:", "core3:"), "no service"),
    "wrong core port": ("bridge2", _replace("bridge2", "core1:50061", "core1:50063"), "does not serve core"),
    "wrong tts port": ("core1", _replace("core1", "tts:50052", "tts:50053"), "does not serve tts"),
    "tts is no core": ("bridge2", _replace("bridge2", "core1:50061", "tts:50052"), "does not serve core"),
    "unknown database host": ("core2", _replace("core2", "@postgres:", "@postgress:"), "no service"),
    "wrong database": ("core1", _replace("core1", "5432/peromesh", "5432/postgres"), "database"),
    "unknown redis": ("core2", _replace("core2", "redis://redis:", "redis://valkey:"), "no service"),
    "not waited for": ("core2", _drop_dependency("core2", "tts"), "not waited for"),
    "probe on another port": ("core1", _replace("core1", "50061", "50071"), "health probe"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_check_fails_on_its_mistake(mistake: str) -> None:
    name, mutate, message = MISTAKES[mistake]
    compose = copy.deepcopy(load())
    mutate(compose)
    with pytest.raises(ComposeError, match=message):
        check_service(name, compose)


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_grpc_probe_says_serving_only_while_it_is() -> None:
    probe = _healthcheck_module()
    server = await start_server("probe", [], "127.0.0.1", 0, token="t")  # the token does not gate health
    try:
        assert await probe.grpc_serving(server.address) is True
        await server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await probe.grpc_serving(server.address) is False
    finally:
        await server.stop(0)
    assert await probe.grpc_serving(server.address, timeout_s=1.0) is False


async def test_the_http_probe_sees_a_bridge_console() -> None:
    probe = _healthcheck_module()
    bridge = await start_bridge("127.0.0.1:1", token="t")  # the core channel connects lazily: none needed
    try:
        assert await probe.http_ok(bridge.address) is True
    finally:
        await bridge.stop()
    assert await probe.http_ok(bridge.address, timeout_s=1.0) is False
    assert probe.main(["tcp", bridge.address]) == 2


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each Dockerfile instruction, continuation lines joined."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(word.upper(), rest.strip()) for word, _, rest in (line.strip().partition(" ") for line in
                                                                 joined.splitlines() if line.strip())]


def test_the_image_runs_what_the_file_asks() -> None:
    steps = _instructions((DEPLOY / "Dockerfile").read_text())
    serving = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    assert ("ENTRYPOINT", '["peromesh"]') in serving  # the commands are `serve …`
    workdir = [args for word, args in serving if word == "WORKDIR"][-1]
    assert ("COPY", f"--from=build {workdir} {workdir}") in serving  # the probes' deploy/healthcheck.py
    sources = [src for word, args in steps if word == "COPY" and "--from" not in args for src in args.split()[:-1]]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = {line.strip().rstrip("/") for line in ignore if line.strip() and not line.startswith("#")}
    root = DEPLOY.parent
    for src in [*sources, "scripts/setup.sh", "deploy/healthcheck.py", "rust_core/Cargo.toml"]:
        path = src.rstrip("/") or "."
        assert (root / path).exists(), src
        assert not any(path == p or path.startswith(p + "/") for p in patterns), (src, "is left out of the context")
