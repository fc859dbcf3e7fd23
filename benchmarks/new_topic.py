"""Support messages of another business (a mobile-phone and broadband provider), written for
the monitor harness: a topic BANKING77's reference never had. Built from templates so a few
hundred distinct messages exist without shipping a data file. No customer data.
"""

from __future__ import annotations

import itertools

_OPENINGS = ("", "Hi, ", "Hello, ", "Hey, ", "Good morning, ", "Please help: ")
_TEMPLATES = (
    "my {service} has been down since {when}.",
    "why is my {service} so slow {when}?",
    "I want to upgrade my {plan} to the unlimited one.",
    "can I keep my phone number if I switch to your {plan}?",
    "the router keeps dropping the {service} connection.",
    "I was charged for roaming {when} but I never left the country.",
    "how do I set up voicemail on my new {device}?",
    "my SIM card is not recognised by the {device}.",
    "the technician never showed up {when} to install the {service}.",
    "I need to cancel my {plan} before the contract renews.",
    "there is no signal at all in my house {when}.",
    "how much data do I have left on my {plan}?",
    "can you unlock my {device} so I can use another network?",
    "my {device} screen cracked, does the insurance cover it?",
    "the {service} speed is far below what my {plan} promises.",
    "I keep getting spam calls on my {device}, can you block them?",
    "how do I activate the eSIM on my {device}?",
    "the bill for my {plan} doubled {when} without explanation.",
    "I moved house, how do I transfer my {service} to the new address?",
    "the TV box shows error code 502 {when}.",
)
_FILL = {
    "service": ("broadband", "fibre internet", "home wifi", "4G data", "landline", "5G"),
    "when": ("yesterday", "this morning", "last night", "two days", "since Monday", "today"),
    "plan": ("mobile plan", "family plan", "prepaid plan", "broadband package", "data bundle"),
    "device": ("phone", "tablet", "smartwatch", "new iPhone", "Android phone", "mobile hotspot"),
}


def new_topic_messages(limit: int = 400) -> list[str]:
    """Up to ``limit`` distinct messages, interleaving templates so any prefix is varied."""
    per_template: list[list[str]] = []
    for template in _TEMPLATES:
        keys = [k for k in _FILL if "{" + k + "}" in template]
        texts = []
        for values in itertools.product(*(_FILL[k] for k in keys)):
            body = template.format(**dict(zip(keys, values, strict=True)))
            texts.append(body)
        per_template.append(texts)
    out: list[str] = []
    seen: set[str] = set()
    for i in itertools.count():
        added = False
        for j, texts in enumerate(per_template):
            if i < len(texts):
                added = True
                opening = _OPENINGS[(i + j) % len(_OPENINGS)]
                text = opening + texts[i] if opening else texts[i][0].upper() + texts[i][1:]
                if text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= limit:
                        return out
        if not added:
            return out
    return out
