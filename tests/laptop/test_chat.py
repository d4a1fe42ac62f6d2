"""`distill chat` on real GGUFs run by llama.cpp: a random tiny student (it never closes its
thinking, so a budget or the context must), and hand-wired bigram students (tests/bigram.py)
whose greedy reply is known token by token: one that thinks three words, one that thinks 2,100
tokens. They show where thinking closes, that no tag fragment leaks, that history replays answers
only, and that a long think ends in an answer or a clean stop, never a llama_decode error."""

import pytest
from bigram import ANSWER, THINKING
from typer.testing import CliRunner

from distill.export import gguf as export
from distill.laptop.chat import ThinkStream, reply
from distill.laptop.session import Conversation, command
from distill.llamacpp import load_gguf
from distill.r1 import student_messages


@pytest.fixture(scope="module")
def random_gguf(tiny_llama_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("chat") / "random.gguf"
    export.convert(tiny_llama_dir, path, {"general.name": "t"})
    return path


def ask(q: str = "q") -> list[dict]:
    return student_messages(q)


def test_think_budget_16_ends_thinking_at_16_tokens(random_gguf):
    llm = load_gguf(random_gguf, n_ctx=512, n_threads=1)
    free = reply(llm, ask("What is 2 + 2?"), max_tokens=40, temperature=0.0)
    assert free.thinking_tokens == 40 and not free.answer and free.stop == "max_tokens"  # never closes itself
    r = reply(llm, ask("What is 2 + 2?"), think_budget=16, max_tokens=40, temperature=0.0)
    assert r.thinking_tokens == 16 and r.budget_forced and r.answer_tokens > 0
    assert free.thinking.startswith(r.thinking)  # the same greedy thinking, cut at 16 tokens


def test_a_full_context_is_a_clean_stop(random_gguf):
    """The thinking is closed with room left for an answer; the answer then runs into the end of
    the context and stops there (llama.cpp would fail `llama_decode` one token later)."""
    llm = load_gguf(random_gguf, n_ctx=256, n_threads=1)
    r = reply(llm, ask(), temperature=0.0)
    assert r.context_forced and not r.budget_forced
    assert r.stop == "context" and r.answer_tokens > 0
    assert r.thinking_tokens + r.answer_tokens > 200  # the context was used, not cut short


def test_no_tag_fragment_is_streamed(bigram_gguf):
    """`</think>` arrives as three tokens ("\\n", "</", "think", ">\\n\\n" with Llama-3's vocab):
    none of its pieces may reach the screen, and the parts stream exactly the reply's text."""
    llm = load_gguf(bigram_gguf, n_ctx=512, n_threads=1)
    pieces = [llm.detokenize([t]).decode() for t in llm.tokenize(b"three\n</think>\n\nThe", add_bos=False)]
    assert "</think>" not in pieces and len(pieces) >= 4  # the tag really is split across tokens
    parts = []
    r = reply(llm, ask(), temperature=0.0, on_text=lambda part, text: parts.append((part, text)))
    assert (r.thinking, r.answer, r.stop) == (THINKING, ANSWER, "end")
    assert not r.budget_forced and r.waits == 0
    assert "".join(t for p, t in parts if p == "thinking") == THINKING + "\n"
    assert "".join(t for p, t in parts if p == "answer") == ANSWER
    assert r.thinking_tokens == 7 and r.answer_tokens == len(llm.tokenize(ANSWER.encode(), add_bos=False))


@pytest.mark.parametrize("pieces, thinking, answer", [
    (["<", "think", ">\nab", "c</", "thi", "nk>", "\n\nA", "!"], "\nabc", "A!"),  # the student opens it itself
    (["x </", "b> y", "</think>", "ok"], "x </b> y", "ok"),  # a false alarm is shown once decided
    (["plain answer"], "", "plain answer"),  # no thinking at all
])
def test_think_stream_splits_at_tags_split_anywhere(pieces, thinking, answer):
    stream = ThinkStream("thinking" if not pieces[0].startswith("<") and "plain" not in pieces[0] else "start")
    events = [e for p in pieces for e in stream.feed(p)] + stream.finish()
    assert "".join(t for p, t in events if p == "thinking") == thinking
    assert "".join(t for p, t in events if p == "answer") == answer
    assert not any("<th" in t or "</t" in t or "nk>" in t for _, t in events)


def test_short_thinking_is_extended_with_wait(bigram_gguf):
    """s1 budget forcing: thinking that closes before min_think tokens gets 'Wait' and goes on."""
    llm = load_gguf(bigram_gguf, n_ctx=512, n_threads=1)
    r = reply(llm, ask(), temperature=0.0, min_think=50, max_waits=1)
    assert r.waits == 1 and r.thinking == "One two three\nWait four"
    assert r.answer == ANSWER


def test_history_replays_answers_only_and_commands_change_the_next_turn(bigram_gguf):
    conv = Conversation(load_gguf(bigram_gguf, n_ctx=512, n_threads=1), temperature=0.0)
    first, dropped = conv.ask("What is 2 + 2?")
    assert (first.thinking, first.answer, dropped) == (THINKING, ANSWER, 0)
    second, _ = conv.ask("And 3 + 3?")
    assert second.answer == ANSWER and [m["role"] for m in conv.history] == ["user", "assistant"] * 2
    assert conv.last_prompt.count(ANSWER) == 1 and THINKING not in conv.last_prompt  # earlier thinking gone
    assert command(conv, "/think off") == "thinking off"
    quick, _ = conv.ask("And 4 + 4?")
    assert quick.thinking == "" and quick.thinking_tokens == 0 and quick.answer == ANSWER
    assert command(conv, "/think on") == "thinking on" and command(conv, "/budget 2").endswith("2 tokens")
    cut, _ = conv.ask("And 5 + 5?")
    assert cut.budget_forced and cut.thinking_tokens == 2
    assert command(conv, "/reset") == "conversation forgotten" and conv.history == []
    assert command(conv, "/budget x").startswith("/reset")  # anything else shows the help


def test_oldest_exchanges_go_when_history_fills_half_the_context(bigram_gguf):
    llm = load_gguf(bigram_gguf, n_ctx=512, n_threads=1)
    conv = Conversation(llm, temperature=0.0)
    drops = [conv.ask(f"Question number {i}: what is {i} + {i}?")[1] for i in range(12)]
    assert sum(drops) > 0 and drops[0] == 0
    assert len(llm.tokenize(conv.last_prompt.encode(), add_bos=False, special=True)) <= 256
    assert conv.last_prompt.count("Question number") < 12 and "Question number 11" in conv.last_prompt


def test_chat_cli_hides_thinking_and_reports_the_budget(random_gguf, bigram_gguf):
    from distill.cli import app

    res = CliRunner().invoke(app, ["chat", str(random_gguf), "--hide-thinking", "--think-budget", "16", "--max-tokens",
                                   "24", "--temperature", "0", "--threads", "1", "-p", "What is 2 + 2?"])
    assert res.exit_code == 0, res.output
    assert "thought for 16 tokens" in res.output
    assert "thinking closed at the budget of 16 tokens" in res.output
    shown = CliRunner().invoke(app, ["chat", str(bigram_gguf), "--show-thinking", "--temperature", "0", "--threads",
                                     "1", "-p", "q"])
    assert shown.exit_code == 0 and "One two three\n" in shown.output and "\\boxed{4}" in shown.output
    assert "</" not in shown.output and "think>" not in shown.output
    missing = CliRunner().invoke(app, ["chat", "nope.gguf", "-p", "q"])
    assert missing.exit_code != 0


def test_interactive_loop_takes_commands(bigram_gguf):
    from distill.cli import app

    res = CliRunner().invoke(app, ["chat", str(bigram_gguf), "--temperature", "0", "--threads", "1",
                                   "--hide-thinking"], input="q\n/think off\nq\n/budget nope\n\n")
    assert res.exit_code == 0, res.output
    assert res.output.count("\\boxed{4}") == 2 and "thinking off" in res.output and "/reset" in res.output
    assert res.output.count("thought for") == 1  # the second question was answered without thinking


def test_long_thinking_answers_in_a_context_that_holds_it(long_thinker_gguf):
    """The student thinks 2,100 tokens: --ctx 8192 (also the default here: its training context)
    holds them and the answer; --ctx 2048 closes the thinking in time and still answers."""
    from distill.cli import app

    base = ["chat", str(long_thinker_gguf), "--hide-thinking", "--temperature", "0", "--threads", "1"]
    roomy = CliRunner().invoke(app, base + ["--ctx", "8192", "-p", "What is 2 + 2?"])
    assert roomy.exit_code == 0, roomy.output
    assert "thought for 2104 tokens" in roomy.output and ANSWER in roomy.output and "closed" not in roomy.output
    default = CliRunner().invoke(app, base + ["--max-tokens", "1", "-p", "q"])
    assert "context 8,192 tokens (the model's training context" in default.output
    assert "stopped at --max-tokens 1" in default.output


def test_long_thinking_is_closed_in_time_in_a_small_context(long_thinker_gguf):
    """--ctx 2048 cannot hold 2,100 tokens of thinking: it is closed early and the student answers."""
    from distill.cli import app

    tight = CliRunner().invoke(app, ["chat", str(long_thinker_gguf), "--hide-thinking", "--temperature", "0",
                                     "--threads", "1", "--ctx", "2048", "-p", "What is 2 + 2?"])
    assert tight.exit_code == 0, tight.output
    assert ANSWER in tight.output and "thinking closed near the context limit of 2,048 tokens" in tight.output
