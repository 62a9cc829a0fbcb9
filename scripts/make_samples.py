"""Write the bundled sample files (our own text, in the real corpora's formats).

    python scripts/make_samples.py

Deterministic: rerunning rewrites identical files. P4G: 30 dialogues in the
corpus's CSV format (named sample_*.csv, so they are never taken for the corpus) + 30
synthesized persona conditions; ESC: 30
PsyDTCorpus-format dialogues and 30 PsyQA-format questions, in English so the
English-only embedded default model can use them.
"""

import csv
import json
import random
from pathlib import Path

from ixmcts.data.p4g import BIG_FIVE, DECISION, MORAL, VALUES, read_info, synthesize_personas
from ixmcts.data.samples import P4G_FILES
from ixmcts.io import write_jsonl

OUT = Path(__file__).resolve().parents[1] / "ixmcts" / "data" / "samples"
rng = random.Random(2024)

GREET = ["Hi there! How are you doing today?", "Hello! Thanks for chatting with me. How is your day going?",
         "Good morning! Have you heard of Save the Children before?", "Hey, nice to meet you. How are things?"]
REPLY_GREET = ["I'm doing well, thanks. How about you?", "Pretty good, a bit tired though.", "Hi! I'm fine. What is this about?",
               "Hello. I have not heard much about it, to be honest."]
PITCH = [
    "Save the Children helps kids in developing countries get food, health care and education.",
    "Millions of children in war zones lack safe water and basic medicine.",
    "The charity has worked for over a hundred years and is rated highly for transparency.",
    "Even a small amount, like fifty cents, can buy a meal for a hungry child.",
    "I donated part of my own payment last week, and it felt really good to help.",
    "Imagine a child your kids' age who has not eaten in two days. Your help matters.",
    "Most of every dollar goes straight to programs on the ground, not to overhead.",
    "You can donate any amount from your task payment, from $0 up to all $2.",
    "In Syria alone, thousands of children need emergency support right now.",
    "Giving even a little sets an example and makes a real difference to a family.",
]
USER_MID = [
    "That sounds like a good cause, but how do I know the money gets there?",
    "I usually give to local charities instead.", "Wow, I did not know it was that bad.",
    "I am a bit short on money this month.", "That is really sad. What exactly do they do with donations?",
    "I have kids myself, so that hits close to home.", "Hmm, I am not sure. Tell me more.",
    "I like that they are transparent about their spending.", "I try to help when I can.",
    "Is it a well known organization?",
]
ASK = ["Would you be willing to donate some of your payment today?", "How much would you like to donate to Save the Children?",
       "Would you consider giving part of your $2 to help?"]
DECIDE = {
    0.0: ["I'm sorry, I won't donate this time.", "Not today, but thank you for telling me about it.",
          "I think I will pass on donating right now."],
    0.1: ["I can give 10 cents."],
    0.25: ["I'll donate a quarter, $0.25."],
    0.5: ["I'll donate 50 cents.", "Okay, I will give $0.50 of my $2.", "Let me donate half a dollar."],
    1.0: ["I'll donate a dollar.", "Sure, I will give $1.", "Out of the $2, I'll give 1 dollar."],
    1.5: ["I'll donate $1.50."],
    2.0: ["I'll donate all of it, $2.", "Let me give two dollars.", "I will donate the full $2."],
}
THANKS = ["Thank you so much! Your donation will make a difference.", "That is wonderful, thank you for your kindness."]
DEMO = {"sex.x": ["Male", "Female", "Other"], "race.x": ["White", "Other"],
        "edu.x": ["Less than four-year college", "Four-year college", "Postgraduate"], "marital.x": ["Unmarried", "Married"],
        "employment.x": ["Employed for wages", "Other"], "religion.x": ["Other religion", "Protestant", "Catholic", "Atheist"],
        "ideology.x": ["Liberal", "Conservative", "Moderate"]}


def person(dialogue_id, user, role, donation, n_turns):
    row = {"B2": dialogue_id, "B3": user, "B4": role, "B6": donation, "B7": n_turns}
    for group, top in ((BIG_FIVE, 5), (MORAL, 6), (VALUES, 6), (DECISION, 5)):
        for col in group:
            row[col] = round(rng.uniform(1, top), 1)
    row["age.x"] = float(rng.randint(19, 70))
    row["income.x"] = float(rng.randint(1, 12))
    for col, values in DEMO.items():
        row[col] = rng.choice(values)
    return row


def p4g():
    d = OUT / "p4g"
    d.mkdir(parents=True, exist_ok=True)
    units, info = [], []
    amounts = [0.0] * 12 + [0.1, 0.25] + [0.5] * 5 + [1.0] * 6 + [1.5] + [2.0] * 4
    for k in range(30):
        did = f"20240101-{k:06d}_sample"
        donation = amounts[k]
        pitches = rng.sample(PITCH, rng.randint(4, 7))
        turns = [(rng.choice(GREET), rng.choice(REPLY_GREET))]
        turns += [(p, rng.choice(USER_MID)) for p in pitches]
        turns.append((rng.choice(ASK), rng.choice(DECIDE[donation])))
        turns.append((rng.choice(THANKS), "You're welcome. Have a nice day!"))
        for t, (persuader, persuadee) in enumerate(turns):
            for role, text in ((0, persuader), (1, persuadee)):
                # like the corpus, a long utterance is split over several Unit rows
                sentences = [s.strip() + ("." if not s.strip().endswith(("?", "!", ".")) else "") for s in text.split(". ") if s.strip()]
                units += [{"Unit": s, "Turn": t, "B4": role, "B2": did} for s in sentences]
        info.append(person(did, f"user_s{2 * k}", 0, round(rng.choice([0.0, 0.5, 1.0]), 2), len(turns)))
        info.append(person(did, f"user_s{2 * k + 1}", 1, donation, len(turns)))
    with open(d / P4G_FILES["dialog_csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["", "Unit", "Turn", "B4", "B2"])
        w.writeheader()
        for i, u in enumerate(units):
            w.writerow({"": i, **u})
    with open(d / P4G_FILES["info_csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(info[0]))
        w.writeheader()
        w.writerows(info)
    write_jsonl(d / "conditions.jsonl", (c.to_dict() for c in synthesize_personas(read_info(d, P4G_FILES["info_csv"]), count=30, seed=0)))


TOPICS = [
    ("work", "My boss keeps criticizing my work in front of everyone", "humiliated and anxious", "to be respected at work"),
    ("breakup", "My partner broke up with me after four years", "heartbroken and lost", "to feel less alone"),
    ("exam", "I failed an important exam and my parents are disappointed", "ashamed and scared", "to know I am not a failure"),
    ("loneliness", "I moved to a new city and I have no friends here", "lonely and sad", "to find people to connect with"),
    ("family", "My parents argue all the time and I am stuck in the middle", "tired and helpless", "some peace at home"),
    ("sleep", "I cannot sleep because I keep worrying about the future", "restless and worried", "to calm my mind"),
    ("grief", "My grandmother passed away last month", "empty and guilty", "to say goodbye properly"),
    ("friendship", "My best friend stopped talking to me without any reason", "confused and hurt", "to understand what happened"),
    ("money", "I lost my job and I cannot pay my rent", "panicked and ashamed", "a way to get back on my feet"),
    ("self-esteem", "I feel like everyone around me is better than me", "worthless and jealous", "to accept myself"),
]
SUPPORT = ["That sounds really hard. Can you tell me more about what happened?", "It makes sense that you feel this way.",
           "You are not alone in this. Many people go through something similar.", "What do you think you need most right now?",
           "It takes courage to talk about this. Thank you for sharing.", "How has this been affecting your daily life?",
           "Let's think together about one small step you could take.", "Is there someone you trust that you could talk to?"]
SEEKER = ["I keep thinking about it every night.", "I guess I am afraid of being judged.", "Nobody around me really understands.",
          "I never told anyone this before.", "Sometimes I just want to give up.", "Maybe I could try talking to them.",
          "That actually makes me feel a little better.", "I think I needed to hear that."]


HIDDEN = [("I think it is all my fault", "afraid it will never get better"),
          ("I believe nobody would miss me", "deep shame"), ("I think I should hide how I feel", "anger I never show")]


def state_en(trouble, feeling, need, hidden):
    thought, hurt = hidden or ("none", "none")
    return (f"[Shown]\nObservations: {trouble}\nFeelings: {feeling}\nNeeds: {need}\nRequests: to be listened to\n"
            f"[Possibly unexpressed]\nObservations: {thought}\nFeelings: {hurt}\nNeeds: {'to be accepted' if hidden else 'none'}\n"
            f"Requests: none")


def esc():
    d = OUT / "esc"
    d.mkdir(parents=True, exist_ok=True)
    psydt, psyqa = [], []
    for k in range(30):
        tag, trouble, feeling, need = TOPICS[k % len(TOPICS)]
        msgs = [{"role": "system", "content": "You are a warm and professional psychological counselor."},
                {"role": "user", "content": f"Hi. {trouble}, and I feel {feeling}."}]
        for _ in range(rng.randint(4, 8)):
            msgs.append({"role": "assistant", "content": rng.choice(SUPPORT)})
            msgs.append({"role": "user", "content": rng.choice(SEEKER)})
        msgs.append({"role": "assistant", "content": "I'm glad we talked. Remember you can come back any time."})
        msgs.append({"role": "user", "content": "Thank you, I feel I have said everything I needed to say."})
        # help-seeker states as `annotate` adds them (appendix A.1): what is left unsaid
        # shrinks over the talk and is empty at the end, which the engagement reads
        seeker = [m for m in msgs if m["role"] == "user"]
        for j, m in enumerate(seeker):
            left = j < len(seeker) - 1
            m["state"] = state_en(trouble, feeling, need, HIDDEN[k % len(HIDDEN)] if left else None)
        psydt.append({"id": k, "normalizedTag": tag, "messages": msgs})
        psyqa.append({"questionID": 1000 + k, "question": f"How do I cope? {trouble}.",
                      "description": f"{trouble}. I feel {feeling} and I don't know what to do. Deep down I want {need}.",
                      "keywords": f"{tag},emotion",
                      "answers": [{"answer_text": rng.choice(SUPPORT), "has_label": False, "labels_sequence": []}]})
    (d / "PsyDTCorpus_sample.json").write_text(json.dumps(psydt, ensure_ascii=False, indent=1) + "\n")
    (d / "psyqa_sample.json").write_text(json.dumps(psyqa, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    p4g()
    esc()
    print(f"wrote samples under {OUT}")
