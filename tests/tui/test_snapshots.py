"""SVG snapshots of the main screens (pytest-textual-snapshot, Textual pinned in pyproject).

Update after an intended change to the look: pytest tests/tui/test_snapshots.py --snapshot-update"""

from rag.tui.app import create_app
from rag.tui.history import History, Turn
from tests.conftest import make_settings
from tests.tui.test_chat import wait_for

SIZE = (120, 32)

ANSWER = (
    "Our empirical results show that FP8 formats outperform INT8 in multiple aspects, including workload "
    "coverage (92.64% vs. 65.87%), model accuracy and suitability for a broader range of operations. [1]"
)
SOURCES = [
    {
        "n": 1,
        "paper_id": "efficient-post-training-quantization-0bfbae",
        "title": "Efficient Post-training Quantization with FP8 Formats",
    },
    {
        "n": 2,
        "paper_id": "zeroquant-fp-a-leap-forward-in-llms-post-cb6b92",
        "title": "ZeroQuant-FP: A Leap Forward in LLMs Post-Training W4A8 Quantization Using Floating-Point Formats",
    },
]


async def steady_cursors(pilot) -> None:
    """A blinking cursor is drawn or not depending on when the snapshot is taken: keep it drawn."""
    for field in pilot.app.screen.query("Input"):
        field.cursor_blink = False
    await pilot.pause()


async def until_ready(pilot) -> None:
    """Conditions, not fixed pauses: a loaded machine renders late."""
    await wait_for(pilot, pilot.app._store_ready.is_set)
    await wait_for(pilot, lambda: "ready" in str(pilot.app.query_one("#status").render()))
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.3)
    await steady_cursors(pilot)


def test_start_screen(snap_compare, bundled_dir, tmp_path):
    app = create_app(make_settings(bundled_dir), history_path=tmp_path / "h.sqlite3")
    assert snap_compare(app, terminal_size=SIZE, run_before=until_ready)


def test_resumed_conversation_with_a_source_open(snap_compare, bundled_dir, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    conversation = history.new_conversation()
    history.add(
        conversation, Turn("which papers compare FP8 vs INT8?", "which papers compare FP8 vs INT8?", ANSWER, SOURCES)
    )
    app = create_app(make_settings(bundled_dir), resume=True, history_path=tmp_path / "h.sqlite3")

    async def open_source(pilot) -> None:
        await until_ready(pilot)
        await pilot.press("ctrl+o", "1")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_source)


def test_command_palette_settings(snap_compare, bundled_dir, tmp_path):
    app = create_app(make_settings(bundled_dir), history_path=tmp_path / "h.sqlite3")

    async def palette(pilot) -> None:
        await until_ready(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: pilot.app.screen.query("Input"))
        for ch in "retriever":
            await pilot.press(ch)
        await wait_for(
            pilot,
            lambda: pilot.app.screen.query("OptionList") and pilot.app.screen.query_one("OptionList").option_count == 2,
        )
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.5)
        await steady_cursors(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=palette)
