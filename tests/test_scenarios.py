import pytest

from ixmcts.data.schema import MODEL, USER, Condition, Turn
from ixmcts.errors import IxmctsError
from ixmcts.scenarios import PruneItem, get_scenario
from ixmcts.scenarios.scoring import vader_compound

COND = Condition(id="c1", scenario="esc", description="I failed my exam.")

SEEKER_DONE_EN = """[Shown]
Observations: I failed my exam
Feelings: ashamed
Needs: support
Requests: listen to me
[Possibly unexpressed]
Observations: none
Feelings: none
Needs: none
Requests: none
Reply: Thank you, I feel better now. EOC"""
SEEKER_LEFT_EN = SEEKER_DONE_EN.replace("Feelings: none", "Feelings: afraid my parents will never trust me")
SEEKER_DONE_ZH = """【已表达】
观察：我考试没考好
感受：羞愧
需要：支持
请求：听我说
【可能未表达】
观察：无
感受：无
需要：无
请求：无
回复：谢谢你，我感觉好多了。EOC"""
SEEKER_LEFT_ZH = SEEKER_DONE_ZH.replace("观察：无", "观察：我觉得父母对我很失望")


# Paper §3.1 "Engagement" / §3.2 "Rollout": engaged = the help-seeker ended the talk AND the
# state in that final output shows no remaining unexpressed feelings or thoughts.
@pytest.mark.parametrize("lang,text,expected", [
    ("en", SEEKER_DONE_EN, 1.0), ("en", SEEKER_LEFT_EN, 0.0), ("zh", SEEKER_DONE_ZH, 1.0), ("zh", SEEKER_LEFT_ZH, 0.0),
    ("en", SEEKER_DONE_EN.replace(" EOC", ""), 0.0),  # not ended → no engagement
    ("en", "EOC", 0.0), ("zh", "EOC", 0.0),  # an end with no state shows nothing: not engaged
    ("en", "Reply: That's all I wanted to say. EOC", 0.0), ("zh", "回复：我说完了。EOC", 0.0),
    ("en", "[Shown]\nFeelings: sad\nReply: Bye. EOC", 0.0),  # no possibly-unexpressed block to read
    ("en", SEEKER_DONE_EN.replace("Feelings: none", "Feelings: n/a"), 1.0),
    ("en", SEEKER_DONE_EN.replace("Observations: none", "Observations: I think I am a burden"), 0.0),  # a thought left
])
def test_esc_engagement(lang, text, expected):
    esc = get_scenario("esc", language=lang)
    parsed = esc.parse_simulator(text)
    assert esc.engagement(parsed, []) == expected


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_esc_ending_without_a_state_is_counted_as_unreadable(lang):
    esc = get_scenario("esc", language=lang)
    assert not esc.readable_end(esc.parse_simulator("EOC"))
    assert esc.readable_end(esc.parse_simulator(SEEKER_DONE_EN if lang == "en" else SEEKER_DONE_ZH))


def test_esc_simulator_parse_splits_state_reply_and_end():
    esc = get_scenario("esc", language="en")
    out = esc.parse_simulator(SEEKER_DONE_EN)
    assert out.ended and out.reply == "Thank you, I feel better now." and out.state.startswith("[Shown]")
    assert "EOC" not in out.reply
    assert not esc.parse_simulator("Reply: I keep worrying about it.").ended


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_esc_policy_parse_cot(lang):
    esc = get_scenario("esc", language=lang)
    w = esc.words
    text = f"{w.lead_in}\n{w.shown}\n{w.fields[1]}: sad\n{w.reply} It sounds painful."
    out = esc.parse_policy(text)
    assert out.well_formed and out.reply == "It sounds painful." and "sad" in out.state


def test_esc_policy_without_cot_is_reported_not_crashed():
    esc = get_scenario("esc", language="en")
    out = esc.parse_policy("I am here for you.")
    assert not out.well_formed and out.reply == "I am here for you." and out.state == ""


def test_esc_policy_target_round_trips():
    esc = get_scenario("esc", language="zh")
    turn = Turn(MODEL, "慢慢说。", state="【已表达】\n感受：难过")
    out = esc.parse_policy(esc.policy_target(turn))
    assert (out.reply, out.state, out.well_formed) == ("慢慢说。", "【已表达】\n感受：难过", True)


def test_esc_prompts_and_speaker_order():
    esc = get_scenario("esc", language="zh")
    assert esc.user_speaks_first and esc.max_depth == 25
    history = [Turn(USER, "我很难过"), Turn(MODEL, "怎么了？")]
    sim = esc.simulator_messages(COND, history)
    assert "I failed my exam." in sim[0]["content"] and "EOC" in sim[0]["content"]
    # the help-seeker's own opening is "assistant"; the counselor's arrival is stated first
    assert [m["role"] for m in sim[1:]] == ["user", "assistant", "user"] and sim[1]["content"] == "Hi."
    pol = esc.policy_messages(COND, history)
    assert [m["role"] for m in pol[1:]] == ["user", "assistant"] and "回复：" in pol[0]["content"]


def test_esc_prune_score_is_state_cosine():
    esc = get_scenario("esc", language="en")
    user = Turn(USER, "I failed.", state="Feelings: ashamed and afraid of my parents' anger about my exam")
    close = Turn(MODEL, "Hm.", state="Feelings: afraid of the parents' reaction to the failed exam, ashamed")
    far = Turn(MODEL, "Hm.", state="Observations: the weather is sunny and the football match was fun")
    s_close, s_far = esc.prune_scores([PruneItem([user], close), PruneItem([user], far)])
    assert -1.0 <= s_far < s_close <= 1.0
    (same,) = esc.prune_scores([PruneItem([user], Turn(MODEL, "x", state=user.state))])
    assert same == pytest.approx(1.0, abs=1e-5)


def test_p4g_prune_score_is_the_persuadees_discounted_sentiment():
    """§4.5 Eq. 5: ss_i = γ·ss_{i−2} + VADER(u_i) over the persuadee's utterances, ss_0 = 0."""
    p4g = get_scenario("p4g", gamma=0.5)
    u1, u2 = "I love that, what a wonderful and kind charity!", "Hmm, I am worried and upset about scams."
    v1, v2 = vader_compound(u1), vader_compound(u2)
    assert v1 > 0.5 and v2 < -0.3
    reply = Turn(MODEL, "What a wonderful, generous and kind thing to do!")
    root = [Turn(USER, "")]  # P4G: the persuader opens; nothing from the persuadee yet
    path2 = root + [Turn(MODEL, "Hi!"), Turn(USER, u1)]
    path3 = path2 + [Turn(MODEL, "Terrible things happen to children."), Turn(USER, u2)]
    first, second, third = p4g.prune_scores([PruneItem(root, reply), PruneItem(path2, reply), PruneItem(path3, reply)])
    assert first == 0.0  # ss_0 = 0
    assert second == pytest.approx(v1)
    assert third == pytest.approx(0.5 * v1 + v2)
    # the persuader's own words do not move the score
    (flat,) = p4g.prune_scores([PruneItem(path3, Turn(MODEL, "Awful, horrible, hateful."))])
    assert flat == pytest.approx(third)


def test_p4g_pruning_keeps_the_branch_where_the_persuadee_warmed_up():
    """A cheerful persuader met by a hostile persuadee must rank below a blunt persuader met
    by a warm persuadee: pruning reads the persuadee's sentiment (§4.5)."""
    from ixmcts.search import Tree

    p4g = get_scenario("p4g")
    tree = Tree(Condition("p", "p4g", "someone"))
    cheerful = tree.add(tree.root, MODEL, 1, text="What a wonderful, happy, amazing day! You are great!", N=1)
    blunt = tree.add(tree.root, MODEL, 1, text="Children are dying. Terrible suffering. Donate.", N=1)
    hostile = tree.add(cheerful, USER, 1, text="Stop bothering me. I hate this and I am annoyed.", N=1)
    warm = tree.add(blunt, USER, 1, text="Oh that is so sad. I love helping kids, this is a great cause.", N=1)
    new = [tree.add(u, MODEL, 2, text=f"reply {k}") for u in (hostile, warm) for k in range(3)]
    scores = p4g.prune_scores([PruneItem(tree.history(tree.nodes[n.parent]), Turn(MODEL, n.text)) for n in new])
    for node, score in zip(new, scores):
        node.prune_score = score
    tree.prune_depth(2, K=3)
    assert [n.pruned for n in new] == [True] * 3 + [False] * 3


def test_p4g_end_signal_and_engagement():
    p4g = get_scenario("p4g")
    assert not p4g.user_speaks_first and p4g.max_depth == 15
    done = p4g.parse_simulator("OK, I'll donate $1.50 [END]")
    assert done.ended and "[END]" not in done.reply and p4g.engagement(done, []) == pytest.approx(0.75)
    assert p4g.parse_simulator("I'll donate 50 cents.").ended  # a decision ends the talk too
    assert not p4g.parse_simulator("Tell me more about it.").ended
    ended_undecided = p4g.parse_simulator("Goodbye. [END]")
    assert ended_undecided.ended and p4g.engagement(ended_undecided, []) == 0.0
    refusal = p4g.parse_simulator("No thanks, not today.")
    assert refusal.ended and p4g.engagement(refusal, []) == 0.0


def test_p4g_prompts():
    p4g = get_scenario("p4g")
    cond = Condition(id="p", scenario="p4g", description="You are a 30-year-old woman.")
    assert p4g.policy_messages(cond, [Turn(USER, "")]) == [{"role": "system", "content": p4g.policy_system()}, {"role": "user", "content": "Hi."}]
    sim = p4g.simulator_messages(cond, [Turn(MODEL, "Hi! Have you heard of Save the Children?")])
    assert "30-year-old woman" in sim[0]["content"] and sim[1] == {"role": "user", "content": "Hi! Have you heard of Save the Children?"}


def test_unknown_scenario_and_language():
    with pytest.raises(IxmctsError, match="unknown scenario 'chess'"):
        get_scenario("chess")
    with pytest.raises(IxmctsError, match="language"):
        get_scenario("esc", language="fr")


def test_p4g_closing_question_at_depth_t():
    p4g = get_scenario("p4g")
    cond = Condition(id="p", scenario="p4g", description="You are a 30-year-old woman.")
    history = [Turn(MODEL, "Please donate.")]
    assert p4g.simulator_messages(cond, history)[-1]["role"] == "user"
    closing = p4g.simulator_messages(cond, history, closing=True)
    assert closing[-1] == {"role": "assistant", "content": "I will donate $"}  # continued by the backend
    assert "how much" in closing[-2]["content"]
    answer = p4g.parse_simulator("I will donate $1.25 to them.")
    assert answer.ended and p4g.engagement(answer, []) == pytest.approx(0.625)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_esc_closing_check_in(lang):
    esc = get_scenario("esc", language=lang)
    closing = esc.simulator_messages(COND, [Turn(USER, "hi"), Turn(MODEL, "hello")], closing=True)
    prefill = closing[-1]
    assert prefill["role"] == "assistant" and prefill["content"].startswith(esc.words.possible)
    assert "EOC" in closing[-2]["content"]
    nothing_left = esc.parse_simulator(prefill["content"] + " [No feelings left]\n" + esc.words.reply + " ok", closing=True)
    assert nothing_left.ended and esc.engagement(nothing_left, []) == 1.0  # the check-in ends the talk
    left = esc.parse_simulator(prefill["content"] + " sadness and loss", closing=True)
    assert left.ended and esc.engagement(left, []) == 0.0
    assert not esc.parse_simulator(prefill["content"] + " none").ended  # only the closing answer ends without EOC


@pytest.mark.parametrize("value,empty", [("none", True), ("None.", True), ("[No feelings left]", True), ("n/a", True),
                                         ("无", True), ("nothing more to say", True), ("no more", True), ("", True),
                                         ("nothing else", True), ("No remaining feelings.", True), ("none yet", True),
                                         ("没有了", True), ("暂时没有", True), ("（无）", True), ("无明显未表达内容", True),
                                         ("都说出来了", True),
                                         ("no one listens to me", False), ("[Feelings of sadness]", False),
                                         ("nobody cares", False), ("担心父母失望", False),
                                         ("None of my friends care about me", False),
                                         ("Nothing I do is ever good enough", False), ("no money left for rent", False),
                                         ("无法入睡", False), ("没有人理解我", False)])
def test_esc_empty_field_values(value, empty):
    esc = get_scenario("esc", language="en")
    state = f"[Possibly unexpressed]\nObservations: none\nFeelings: {value}"
    assert (esc.unexpressed(state) == {}) is empty


def test_esc_end_token_next_to_chinese_text_ends_the_talk():
    esc = get_scenario("esc", language="zh")
    out = esc.parse_simulator(SEEKER_DONE_ZH.replace("。EOC", "EOC"))
    assert out.ended and "EOC" not in out.reply and esc.engagement(out, []) == 1.0
    assert not esc.parse_simulator("回复：我想聊聊EOCD的事").ended  # part of a longer word is not the token
