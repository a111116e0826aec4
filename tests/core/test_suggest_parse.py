"""Reading language-model answers (good, bad and junk), validating them, Segue-mini's words, the template
fallback, the ranking math and where suggestions go. Pure Python: no model is loaded."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.suggesters.base import load_prompt
from engine.suggesters.parse import Candidate, is_copy, parse_suggestions, validate
from engine.suggesters.rank import Measure, assign, measure, slot_score
from engine.suggesters.template import template_bridges
from engine.suggesters.vocab import Vocabulary

START, END = "A futuristic cityscape, vibrant and detailed", "A cheerful young girl in a magical forest"


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "answer",
    [
        "1. A girl standing in a city garden\n2. A place where technology and nature coexist\n"
        "3. A dreamlike world where the city slowly transforms into a forest",
        "Here are three scenes:\n\n1) A girl standing in a city garden.\n"
        "2) A place where technology and nature coexist.\n"
        "3) A dreamlike world where the city slowly transforms into a forest.\n\nI hope this helps!",
        '```json\n["A girl standing in a city garden", "A place where technology and nature coexist", '
        '"A dreamlike world where the city slowly transforms into a forest"]\n```',
        '{"prompts": [{"prompt": "A girl standing in a city garden"}, '
        '{"prompt": "A place where technology and nature coexist"}, '
        '{"text": "A dreamlike world where the city slowly transforms into a forest"}]}',
        "- **A girl standing in a city garden**\n- “A place where technology and nature coexist”\n"
        "- A dreamlike world where the city slowly transforms into a forest (closer to the end)",
        "Scene 1: A girl standing in a city garden\nScene 2: A place where technology and nature coexist\n"
        "Scene 3: A dreamlike world where the city slowly transforms into a forest",
        "A girl standing in a city garden; A place where technology and nature coexist; "
        "A dreamlike world where the city slowly transforms into a forest",
    ],
    ids=[
        "numbered",
        "chatter-around-a-list",
        "fenced-json",
        "json-objects",
        "markdown-bullets",
        "labels",
        "one-line",
    ],
)
def test_good_answers_in_any_common_form_give_the_three_prompts(answer: str) -> None:
    assert parse_suggestions(answer) == [
        "A girl standing in a city garden",
        "A place where technology and nature coexist",
        "A dreamlike world where the city slowly transforms into a forest",
    ]


def test_a_list_followed_by_rambling_keeps_only_the_list() -> None:
    answer = (
        "1. a princess walking through her bedroom in a strange new moonlit light\n"
        "   In this beautiful land of dreams they have\n   The lights are all on but she is alone\n\n"
        "   She will not be seen again next month"
    )
    assert parse_suggestions(answer) == [
        "a princess walking through her bedroom in a strange new moonlit light"
    ]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        None,
        "   \n\n",
        "1.\n2.\n3.",
        "```json\n{not json at all\n```",
        "{}",
        "[]",
        "[1, 2, 3]",
        "...",
        "?!?",
        42,
    ],
)
def test_junk_gives_no_suggestion_and_never_raises(junk: object) -> None:
    assert parse_suggestions(junk) == []  # type: ignore[arg-type]


def test_echoes_headers_duplicates_and_paragraphs_are_dropped() -> None:
    answer = (
        "Start: a futuristic city\nEnd: a forest\nWrite 3 intermediate scenes.\nScenes:\n"
        "1. a city garden\n2. A City Garden.\n3. " + "very long " * 40 + "\n4. a forest path at dusk"
    )
    assert parse_suggestions(answer) == ["a city garden", "a forest path at dusk"]


def test_validation_drops_empty_copies_duplicates_and_prompts_over_the_window() -> None:
    prompts = [
        "",
        "A futuristic cityscape, vibrant and detailed",  # a copy of the start
        "a cheerful young girl in the magical forest",  # the end, with another article
        "a girl standing in a city garden",
        "a girl standing in a city garden",
        "word " * 80,
        "a place where technology and nature coexist",
    ]
    kept, rejected = validate(prompts, [START, END], count_tokens=lambda p: len(p.split()) + 2)
    assert [c.prompt for c in kept] == [
        "a girl standing in a city garden",
        "a place where technology and nature coexist",
    ]
    reasons = [r.reason for r in rejected]
    assert reasons[0] == "empty" and reasons[1:3] == ["a copy of an endpoint"] * 2
    assert reasons[3] == "a duplicate" and "over the 77-token window" in reasons[4]


def test_a_tokenizer_that_fails_rejects_the_prompt_instead_of_raising() -> None:
    def broken(_: str) -> int:
        raise RuntimeError("boom")

    kept, rejected = validate(["a city garden"], [START, END], count_tokens=broken)
    assert kept == [] and rejected[0].reason == "not tokenizable"


def test_is_copy_ignores_articles_case_and_punctuation() -> None:
    assert is_copy("The futuristic cityscape vibrant and detailed!", [START])
    assert not is_copy("a girl in a futuristic cityscape", [START, END])


# ---------------------------------------------------------------- Segue-mini's words


def test_segue_mini_suggestions_are_rebuilt_in_its_words_or_dropped() -> None:
    mini = Vocabulary.for_model("segue-mini")
    assert mini is not None
    assert mini.adapt("a desert at sunset") == "a desert at sunset"  # every word known: unchanged
    assert mini.adapt("A girl standing in a city garden") == "a girl in a city"
    assert (
        mini.adapt("a girl sitting on a balcony after dark, looking up at stars")
        == "a girl under a starry sky"
    )
    assert (
        mini.adapt("a red boat drifting on a calm sea under the moon") == "a red boat on a sea with the moon"
    )
    assert (
        mini.adapt("a girl in a blue dress walking her little brown dog")
        == "a girl in blue and a little brown dog"
    )
    assert mini.adapt("A place where technology and nature coexist") is None
    kept, rejected = validate(
        ["A place where technology and nature coexist", "A girl standing in a city garden"],
        [START, END],
        adapt=mini.adapt,
    )
    assert kept == [Candidate("a girl in a city", "llm", "A girl standing in a city garden")]
    assert rejected[0].reason == "no word the model knows"


def test_models_with_a_full_vocabulary_get_no_filter() -> None:
    class Big:
        def __len__(self) -> int:
            return 49408

        def get_vocab(self) -> dict[str, int]:
            return {}

    assert Vocabulary.for_model("runwayml/stable-diffusion-v1-5", Big()) is None
    assert Vocabulary.for_model("segue-tiny") is None


def test_a_small_tokenizer_without_a_word_list_filters_by_its_whole_words() -> None:
    class Small:
        vocab = {"city</w>": 0, "forest</w>": 1, "girl</w>": 2, "in</w>": 3, "a</w>": 4, "g": 5}

        def __len__(self) -> int:
            return len(self.vocab)

        def get_vocab(self) -> dict[str, int]:
            return self.vocab

    small = Vocabulary.for_model("my-small-model", Small())
    assert small is not None
    assert small.adapt("a girl standing in a forest glade") == "a girl in a forest"
    assert small.adapt("quantum entanglement") is None


# ---------------------------------------------------------------- the template fallback


def test_templates_are_deterministic_ordered_and_never_copy_an_endpoint() -> None:
    start, end = "a futuristic city at night", "a sunny forest with a girl"
    first = template_bridges(start, end, 3)
    assert first == template_bridges(start, end, 3)
    assert first == [
        "a futuristic city with a girl",
        "a futuristic city slowly turning into a sunny forest",
        "a sunny forest with traces of the futuristic city",
    ]
    for count in range(1, 9):
        bridges = template_bridges(start, end, count)
        assert 1 <= len(bridges) <= count
        assert not any(is_copy(b, [start, end]) for b in bridges)
    assert template_bridges("cat", "dog", 3) == [
        "cat with dog",
        "cat slowly turning into dog",
        "dog with traces of the cat",
    ]


def test_the_few_shot_prompt_lives_in_the_repo_with_the_founding_study_examples() -> None:
    prompt = load_prompt()
    messages = prompt.messages("a desert at noon", "a snowy field at night", 4)
    assert messages[0]["role"] == "system" and "bridge" in messages[0]["content"]
    assert messages[1]["content"].startswith("Start: A futuristic cityscape, vibrant and detailed")
    assert "A dreamlike world where the city slowly transforms into a forest" in messages[2]["content"]
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant"] * (len(messages[1:-1]) // 2)
    assert messages[-1] == {
        "role": "user",
        "content": "Start: a desert at noon\nEnd: a snowy field at night\nWrite 4 intermediate scenes.",
    }


# ---------------------------------------------------------------- ranking math


def test_progress_and_detour_of_a_probe() -> None:
    on_the_way = measure(0.25, 0.75, 1.0)
    assert on_the_way.progress == pytest.approx(0.25) and on_the_way.detour == pytest.approx(1.0)
    off_the_way = measure(0.9, 0.9, 1.0)
    assert off_the_way.progress == pytest.approx(0.5) and off_the_way.detour == pytest.approx(1.8)
    assert slot_score(on_the_way, 0.25) == pytest.approx(1.0)
    assert slot_score(on_the_way, 0.75) < slot_score(on_the_way, 0.25)
    assert slot_score(off_the_way, 0.5) < slot_score(measure(0.5, 0.5, 1.0), 0.5)
    assert measure(0.0, 0.0, 0.0).progress == 0.5  # three identical pictures: no crash


def test_each_slot_takes_the_candidate_that_fits_it_best() -> None:
    late, early, middle, wanderer = (
        Measure(0.8, 1.0),
        Measure(0.2, 1.0),
        Measure(0.5, 1.05),
        Measure(0.5, 2.0),
    )
    pairs = assign([late, early, middle, wanderer], [0.25, 0.5, 0.75])
    assert sorted((c, s) for c, s, _ in pairs) == [(0, 2), (1, 0), (2, 1)]
    # A flagged frame: every slot at one t, the best candidates for it.
    pairs = assign([late, early, middle, wanderer], [0.5, 0.5])
    assert [c for c, _, _ in pairs] == [2, 3]  # on the way beats a detour, even one at the right place


# ---------------------------------------------------------------- where suggestions go


@dataclass
class _Keyframe:
    id: int
    position: float
    prompt: str


@dataclass
class _Transition:
    id: int
    keyframes: list[_Keyframe]


def _transition() -> _Transition:
    return _Transition(
        7, [_Keyframe(1, 0.0, "a city"), _Keyframe(3, 0.2, "a city garden"), _Keyframe(2, 1.0, "a forest")]
    )


def test_bridges_go_evenly_into_the_chosen_or_widest_segment() -> None:
    from services.errors import FieldError
    from services.suggestions import plan

    t = _transition()
    widest = plan(t, "bridge", 3, None, None)  # type: ignore[arg-type]
    assert (widest.start, widest.end) == ("a city garden", "a forest")
    assert widest.positions == [0.4, 0.6, 0.8]
    assert widest.local(0.6) == pytest.approx(0.5)
    first = plan(t, "bridge", 1, 1, None)  # type: ignore[arg-type]
    assert (first.start, first.end, first.positions) == ("a city", "a city garden", [0.1])
    flagged = plan(t, "bridge", 2, None, 0.55)  # type: ignore[arg-type]
    assert flagged.positions == [0.55, 0.55] and flagged.start == "a city garden"
    story = plan(t, "storyboard", 4, None, None)  # type: ignore[arg-type]
    assert (story.start, story.end) == ("a city", "a forest")
    assert story.positions == [0.21, 0.4, 0.6, 0.8]  # 0.2 is a keyframe: its suggestion moves off it
    with pytest.raises(FieldError) as error:
        plan(t, "bridge", 3, 2, None)  # type: ignore[arg-type]  # the end keyframe starts no segment
    assert error.value.field == "after_keyframe_id"
