"""The console's panels and conversation handling in a real Chromium against a real mesh.

Every panel is driven by real gateway actions on a running mesh (tasks and reminders in SQLite,
a second device attached over the WebSocket, the monitor's samples), and checked both on screen
and, where the mesh keeps state, through the mesh itself (a separate gateway client asks it).
Each test fails on any page error, console error or HTTP error response (Problems).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh
from server.dialog.history import DialogTurnRow, HistoryStore

from .console_kit import Problems, chromium, console_mesh, js, open_console, screenshot, wait_js
from .gateway_client import GatewayClient

pytestmark = pytest.mark.slow
TASKS = '[data-panel="tasks"]'
REMINDERS = '[data-panel="reminders"]'
DEVICES = '[data-panel="devices"]'
SYSTEM = '[data-panel="system"]'
HISTORY_LOADED = '[data-history][data-state="loaded"]'


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    async with console_mesh(data_dir, "--scripted-delay-ms", "15", "--monitor-interval", "0.3") as mesh:
        yield mesh


@pytest.fixture
async def long_answer_mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    """A mesh whose answers are written at once and spoken for a minute: the text is final while
    the speech is still being synthesized (the window in which a next message supersedes it)."""
    text = " ".join(f"This is sentence {n} of a long answer, spoken clause by clause." for n in range(1, 25))
    async with console_mesh(data_dir, "--scripted-delay-ms", "0", "--scripted-text", text) as mesh:
        yield mesh


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def other(mesh: Mesh) -> AsyncIterator[GatewayClient]:
    """A second device (a phone) on the same mesh, to act and to check the mesh's state."""
    client = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "phone-1", protocol_version=1)
    yield client
    await client.close()


async def ask(client: GatewayClient, action: str, **params: str) -> Any:
    """The JSON data of an action's response (the mesh's own view, not the page's)."""
    rid = await client.request(action, **params)
    seen = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid)
    response = seen[-1].response
    assert response.status == 0, response
    return json.loads(response.data)


async def say(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.click("#send")


async def answers_done(page: Page, count: int) -> None:
    """Wait until `count` assistant answers have their metrics (the turn ended)."""
    await wait_js(page, f"document.querySelectorAll('.msg.assistant .chip').length > 0 && "
                        f"[...document.querySelectorAll('.msg.assistant')].filter("
                        f"m => m.querySelector('.chip')).length >= {count}")


async def test_tasks_panel_adds_completes_reopens_deletes(mesh: Mesh, browser: Browser, other: GatewayClient) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-tasks", problems)
    await page.fill(f"{TASKS} input[name=title]", "buy milk")
    await page.click(f"{TASKS} button[type=submit]")
    item = page.locator(f"{TASKS} li[data-task-id]", has_text="buy milk")
    await item.wait_for()
    task_id = await item.get_attribute("data-task-id")
    assert [t["title"] for t in await ask(other, "task:list")] == ["buy milk"]

    await item.locator("input[type=checkbox]").click()
    await page.wait_for_selector(f'{TASKS} li.done[data-task-id="{task_id}"]')
    assert (await ask(other, "task:list", include_completed="true"))[0]["completed"] is True
    await item.locator("input[type=checkbox]").click()  # reopen
    await page.wait_for_selector(f'{TASKS} li:not(.done)[data-task-id="{task_id}"]')
    assert (await ask(other, "task:list"))[0]["completed"] is False

    # a task added elsewhere (another device) appears live, through the task:update broadcast
    await ask(other, "task:add", title="call mom")
    await page.locator(f"{TASKS} li[data-task-id]", has_text="call mom").wait_for()
    await page.locator(f"{TASKS} li[data-task-id]", has_text="call mom").locator("button.x").click()
    await page.locator(f"{TASKS} li[data-task-id]", has_text="call mom").wait_for(state="detached")
    assert [t["title"] for t in await ask(other, "task:list", include_completed="true")] == ["buy milk"]

    # the activity list says it in words, and system_stats never floods it
    activity = await js(page, "[...document.querySelectorAll('#activity li')].map(li => li.textContent)")
    assert any("Task added: “call mom”" in line for line in activity), activity
    assert any("Task deleted: “call mom”" in line for line in activity), activity
    assert not any("{" in line or "system" in line for line in activity), activity
    await screenshot(page, "tasks")
    assert problems.lines == []


async def test_reminder_set_by_chat_is_listed_and_cancelled(mesh: Mesh, browser: Browser,
                                                            other: GatewayClient) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-reminders", problems)
    await say(page, "remind me in 10 minutes to stretch")
    item = page.locator(f"{REMINDERS} [data-upcoming] li[data-state=active]", has_text="stretch")
    await item.wait_for(timeout=30_000)
    [reminder] = await ask(other, "reminder:list")
    assert reminder["content"] == "stretch" and await item.get_attribute("data-reminder-id") == reminder["id"]

    await item.locator("button", has_text="Cancel").click()
    cancelled = f'{REMINDERS} [data-recent] li[data-state=cancelled][data-reminder-id="{reminder["id"]}"]'
    await page.wait_for_selector(cancelled)
    assert await page.locator(f"{REMINDERS} [data-upcoming] li[data-reminder-id]").count() == 0
    [after] = await ask(other, "reminder:list", include_inactive="true")
    assert after["state"] == "cancelled"

    # one that fires while the page watches: it moves to the recent ones as done, and the activity says so
    await say(page, "remind me in 2 seconds to drink water")
    done = page.locator(f"{REMINDERS} [data-recent] li[data-state=done]", has_text="drink water")
    await done.wait_for(timeout=30_000)
    activity = await js(page, "[...document.querySelectorAll('#activity li')].map(li => li.textContent)")
    assert any(line.startswith("Reminder cancelled: “stretch”") for line in activity), activity
    assert any(line.startswith("⏰ Reminder: “drink water”") for line in activity), activity
    await screenshot(page, "reminders")
    assert problems.lines == []


async def test_devices_panel_lists_nodes_with_capabilities(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-devices", problems)
    await page.wait_for_selector(f'{DEVICES} li[data-node-id="web-devices"] [data-capability="ui.display"]')
    assert "this tab" in await page.locator(f'{DEVICES} li[data-node-id="web-devices"]').inner_text()

    phone = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "phone-7", protocol_version=1)
    await phone.send(gw.Envelope(id="reg", source_id="phone-7", target_id="master", register=gw.CapabilityRegister(
        capabilities=[gw.Capability(name="location.gps", description="where the phone is"),
                      gw.Capability(name="shell.run", description="run a command", dangerous=True)])))
    await phone.recv_until(lambda e: e.HasField("response") and e.response.request_id == "reg")
    phone_item = f'{DEVICES} li[data-node-id="phone-7"]'
    await page.wait_for_selector(f'{phone_item} [data-capability="location.gps"]', timeout=10_000)
    assert await page.get_attribute(f'{phone_item} [data-capability="shell.run"]', "class") == "cap dangerous"
    await screenshot(page, "devices")

    await phone.close()  # it leaves: the list drops it
    await page.wait_for_selector(phone_item, state="detached", timeout=10_000)
    assert problems.lines == []


async def test_system_chart_draws_live_samples(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-system", problems)
    await wait_js(page, f"Number(document.querySelector('{SYSTEM}').dataset.samples) >= 3", 20_000)
    first = await js(page, f"document.querySelector('{SYSTEM} polyline.cpu').getAttribute('points')")
    await wait_js(page, f"Number(document.querySelector('{SYSTEM}').dataset.samples) >= 5", 20_000)
    later = await js(page, f"document.querySelector('{SYSTEM} polyline.cpu').getAttribute('points')")
    assert len(later.split()) > len(first.split()) >= 3 and later != first  # the line grew: live
    for point in later.split():
        x, y = map(float, point.split(","))
        assert 0 <= x <= 300 and 0 <= y <= 90
    memory = await page.locator(f'{SYSTEM} [data-series="mem"]').inner_text()
    assert "%" in memory and "GiB" in memory, memory
    assert await page.locator("#activity li[data-action=system_stats]").count() == 0
    await screenshot(page, "system")
    assert problems.lines == []


async def test_stop_returns_to_idle_and_only_cut_answers_are_marked(long_answer_mesh: Mesh,
                                                                    browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, long_answer_mesh.addresses["bridge"], "web-stop", problems)
    # an answer whose text is complete, still speaking when the next message goes (sent the moment
    # its text is final, while the mesh still synthesizes it): the mesh ends it as interrupted, but
    # the user did not cut it, so it is not marked
    await js(page, """() => {
        const { client } = window.peromesh;
        window.finals = [];
        client.on('assistant_final', (e) => {
            window.finals.push([e.turnId, e.params.interrupted]);
            if (window.finals.length === 1) {
                document.querySelector('#input').value = 'Tell me more';
                document.querySelector('#send').click();
            }
        });
    }""")
    await say(page, "Hello Pero")
    await answers_done(page, 2)
    finals = await js(page, "window.finals")
    assert finals[0][1] == "false" and [finals[0][0], "true"] in finals, finals  # superseded by the mesh
    first = page.locator(".msg.assistant").nth(0)
    assert await first.evaluate("m => m.className") == "msg assistant"
    assert await first.locator(".chip").all_inner_texts() != [] and await first.locator(".chip.cut").count() == 0

    # Stop while speaking: marked interrupted, the header says so, then returns to idle
    await wait_js(page, "window.peromesh.player.playing || document.querySelector('#status').dataset.state === 'idle'")
    await say(page, "And a story, please")
    await wait_js(page, "window.peromesh.player.playing && document.querySelectorAll('.msg.assistant').length === 3")
    await page.click("#stop")
    assert await page.get_attribute("#status", "data-state") == "interrupted"
    await page.locator(".msg.assistant").nth(2).locator(".chip.cut").wait_for(timeout=10_000)
    assert "interrupted" in await page.locator(".msg.assistant").nth(2).get_attribute("class")
    await page.wait_for_selector('#status[data-state="idle"]', timeout=5_000)
    assert await page.is_disabled("#stop")
    await screenshot(page, "stop")

    # an answer that fails is an error bubble without the streaming cursor
    await say(page, "x" * 9000)  # over the 8000 characters a user text may have
    await page.wait_for_selector(".msg.assistant.error", timeout=10_000)
    assert await page.locator(".msg.streaming").count() == 0
    assert problems.lines == []


async def test_reload_brings_the_conversation_and_sound_settings_back(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-reload", problems)
    await say(page, "Hello Pero")
    await answers_done(page, 1)
    await say(page, "你好")
    await answers_done(page, 2)
    before = await js(page, "[...document.querySelectorAll('.msg .bubble')].map(b => b.textContent)")
    await page.eval_on_selector("#volume", "el => { el.value = '40'; el.dispatchEvent(new Event('input')); }")
    await page.click("#mute")  # (after the volume: moving the slider unmutes)
    session = await js(page, "window.peromesh.client.welcome.sessionId")

    await page.reload()
    await page.wait_for_selector('#conn[data-state="open"]', timeout=15_000)
    await page.wait_for_selector(HISTORY_LOADED, timeout=15_000)
    assert await js(page, "window.peromesh.client.welcome.sessionId") == session
    after = await js(page, "[...document.querySelectorAll('.msg .bubble')].map(b => b.textContent)")
    assert after == before and before[0] == "Hello Pero" and before[2] == "你好" and all(before)
    assert await page.get_attribute("#mute", "aria-pressed") == "true"
    assert await page.input_value("#volume") == "40"
    await say(page, "again")  # the player exists after a user gesture: muted means gain 0
    await wait_js(page, "window.peromesh.player.gain && window.peromesh.player.gain.gain.value === 0")
    await screenshot(page, "reloaded")
    assert problems.lines == []


async def test_a_replaced_tab_says_why_and_takes_over(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    context = await browser.new_context()  # one browser profile: both tabs are the same device
    first = await open_console(context, mesh.addresses["bridge"], "web-tabs", problems, "first")
    second = await open_console(context, mesh.addresses["bridge"], "web-tabs", problems, "second")
    await first.wait_for_selector("#takeover:not([hidden])", timeout=10_000)
    assert await first.get_attribute("#conn", "data-state") == "closed"
    assert await first.get_attribute("#status", "data-state") == "idle" and await first.is_disabled("#input")
    assert "another tab" in await first.inner_text("#takeover")
    await screenshot(first, "replaced-tab")

    await first.click("#takeover-button")
    await first.wait_for_selector('#conn[data-state="open"]', timeout=15_000)
    await second.wait_for_selector("#takeover:not([hidden])", timeout=10_000)
    assert await first.is_hidden("#takeover") and await first.is_enabled("#input")
    await say(first, "Hello again")
    await answers_done(first, 1)
    assert await second.get_attribute("#conn", "data-state") == "closed"
    await context.close()
    assert problems.lines == []


async def test_an_answer_cut_short_by_the_next_message_is_marked_superseded(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-supersede", problems)
    await js(page, """() => {  // the next message goes at the first words of the answer, mid-text
        const off = window.peromesh.client.on('assistant_delta', () => {
            off();
            document.querySelector('#input').value = 'Wait, something else';
            document.querySelector('#send').click();
        });
    }""")
    await say(page, "Hello Pero")
    await answers_done(page, 2)
    first = page.locator(".msg.assistant").nth(0)
    await first.locator(".chip.superseded").wait_for(timeout=10_000)
    assert "superseded" in await first.get_attribute("class")
    assert await first.locator(".chip.cut").count() == 0  # not "interrupted": the user did not cut it
    second = page.locator(".msg.assistant").nth(1)
    assert await second.evaluate("m => m.className") == "msg assistant"
    assert problems.lines == []


async def test_history_comes_back_from_the_server_paged_with_what_was_heard(long_answer_mesh: Mesh,
                                                                           browser: Browser) -> None:
    """localStorage cleared before the reload: what comes back can only come from the mesh."""
    problems = Problems()
    bridge = long_answer_mesh.addresses["bridge"]
    page = await open_console(browser, bridge, "web-history", problems)
    session = await js(page, "window.peromesh.client.welcome.sessionId")
    store: HistoryStore = long_answer_mesh.core.deps.history
    await store.db.run(lambda s: s.add_all([  # an earlier conversation of this session, 24 turns long
        DialogTurnRow(session_id=session, turn_index=n, role=role, text=f"{role} {n}")
        for n in range(1, 25) for role in ("user", "assistant")]))
    await say(page, "Tell me a long story")
    await wait_js(page, "window.peromesh.player.playedMs(window.peromesh.player.turnId) > 1500")
    await page.click("#stop")  # cut after the first words: most of the minute of speech is never heard
    cut = page.locator(".msg.assistant").last
    await cut.locator(".chip.cut").wait_for(timeout=10_000)
    told = await cut.locator(".bubble").text_content()

    await js(page, "localStorage.clear()")  # the token and the browser's transcript go too
    await page.goto("about:blank")  # (a goto that only adds a #fragment would not load the page again)
    await page.goto(f"http://{bridge}/?device=web-history#token=test-token")  # a reload with nothing local
    await page.wait_for_selector(HISTORY_LOADED, timeout=15_000)
    assert await js(page, "window.peromesh.client.welcome.sessionId") == session
    bubbles = "[...document.querySelectorAll('[data-history] .msg .bubble')].map(b => b.textContent)"
    first_page = await js(page, bubbles)
    assert len(first_page) == 40 and first_page[:2] == ["user 6", "assistant 6"]  # turns 6..25
    assert first_page[-2:] == ["Tell me a long story", told]
    assert await page.locator(".msg.local").count() == 0

    restored = page.locator("[data-history] .msg.assistant").last
    assert "interrupted" in (await restored.get_attribute("class") or "")
    chip = await restored.locator(".chip.cut").inner_text()
    assert chip.startswith("interrupted · heard ") and chip != "interrupted · heard 100%", chip
    unheard = await restored.locator(".bubble .unheard").text_content()
    assert unheard and told and told.endswith(unheard) and len(unheard) < len(told)

    earlier = page.locator("[data-history] button.earlier")
    assert await earlier.is_visible()
    await screenshot(page, "history")
    await earlier.click()
    await wait_js(page, "document.querySelector('[data-history]').dataset.turns === '25'")
    everything = await js(page, bubbles)
    assert everything[:2] == ["user 1", "assistant 1"] and everything[10:] == first_page
    assert await earlier.is_hidden()
    assert problems.lines == []
