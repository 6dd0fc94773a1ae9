"""Typed settings: every `serve` flag is one dataclass field with one default, and the composition
root unwinds whatever started when a later server fails to start."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest

from bridge.limits import Limits
from server.app.settings import CoreSettings, MeshSettings
from server.asr.streaming import EndpointConfig
from server.cli import build_parser, main, parse_serve
from server.hub.hub import HubConfig
from tests.meshkit import start_test_mesh


def _leaves(cls: type) -> list[str]:
    out: list[str] = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.type) or isinstance(field.default_factory, type):
            out += _leaves(field.default_factory)  # type: ignore[arg-type]
        else:
            out.append(field.name)
    return out


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite sets some PEROMESH_* twins (e.g. espeak-ng only); these tests read the defaults."""
    for name in [n for n in os.environ if n.startswith("PEROMESH_")]:
        monkeypatch.delenv(name)


def test_defaults_are_the_domains_own() -> None:
    settings = parse_serve([])
    assert settings == MeshSettings()  # the parser adds no default of its own
    assert settings.core.hub.heartbeat_interval == HubConfig().heartbeat_interval_s
    assert settings.bridge.max_frame_bytes == Limits().max_frame_bytes
    assert settings.core.speech.complete_silence_ms == EndpointConfig().complete_silence_ms


def test_every_field_is_one_flag_and_flags_are_unique() -> None:
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]  # type: ignore[union-attr]
    flags = [o for a in serve._actions for o in a.option_strings if o.startswith("--")]
    assert len(flags) == len(set(flags))
    assert len(flags) - 1 == len(_leaves(MeshSettings))  # --help aside, one flag per leaf field


def test_flags_and_environment_twins_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEROMESH_HUB_RESUME_GRACE", "5")
    settings = parse_serve(["--tool-timeout", "2.5", "--nit", "off", "--core-port", "0", "--asr-language", "zh"])
    assert settings.core.hub.resume_grace == 5.0 and isinstance(settings.core.hub.resume_grace, float)
    assert settings.core.tools.timeout == 2.5 and settings.core.tools.nit == "off"
    assert settings.core.port == 0 and settings.core.speech.asr_language == "zh"
    assert parse_serve(["--hub-resume-grace", "7"]).core.hub.resume_grace == 7.0  # the command line wins
    with pytest.raises(SystemExit):
        parse_serve(["--nit", "maybe"])


def test_selection_follows_only_and_given_addresses() -> None:
    assert parse_serve([]).selected() == ("tts", "memory", "core", "bridge")
    assert parse_serve(["--tts-addr", "h:1"]).selected() == ("memory", "core", "bridge")
    assert parse_serve(["--only", "bridge,core"]).selected() == ("core", "bridge")
    with pytest.raises(ValueError, match="unknown server"):
        parse_serve(["--only", "core,brain"]).selected()
    assert isinstance(parse_serve([]).core, CoreSettings)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_failed_start_stops_what_had_started(tmp_path: Path) -> None:
    core_port = _free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):  # the bridge cannot bind: the core had started by then
            await start_test_mesh(tmp_path, "--core-port", str(core_port), "--bridge-port",
                                  str(taken.getsockname()[1]), "--asr-model", "none", only=["core", "bridge"])
    finally:
        taken.close()
    with socket.socket() as again:  # the exit stack stopped the core: its port is free again
        again.bind(("127.0.0.1", core_port))
    mesh = await start_test_mesh(tmp_path, "--asr-model", "none", only=["core", "bridge"])
    try:
        assert set(mesh.addresses) == {"core", "bridge"}
    finally:
        await mesh.stop()


def test_turn_timing_flags_that_contradict_each_other_stop_the_command_with_the_reason() -> None:
    for argv in (["--turn-judge-after-ms", "0"], ["--turn-judge-after-ms", "300"],
                 ["--turn-complete-silence-ms", "3000"]):
        with pytest.raises(SystemExit, match="judge-after-ms <= complete-silence-ms"):
            main(["serve", *argv])
    speech = parse_serve(["--turn-judge-after-ms", "60"]).core.speech
    assert speech.judge_after_ms == 60 and EndpointConfig().judge_after_ms == 100
