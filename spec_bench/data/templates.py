"""Conversation prompts per model family, as Spec-Bench (FastChat) builds them.

Multi-turn questions ask turn 2 with turn 1's answer in the conversation.
"""

from __future__ import annotations

from spec_bench.errors import HarnessError

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# Llama-2-chat's default system prompt (the HD paper runs Llama-2 with it).
LLAMA2_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, "
    "dangerous, or illegal content. Please ensure that your responses are socially unbiased and positive "
    "in nature.\n\nIf a question does not make any sense, or is not factually coherent, explain why "
    "instead of answering something not correct. If you don't know the answer to a question, please "
    "don't share false information."
)
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _vicuna(turns: list[str], answers: list[str]) -> str:
    # FastChat's ADD_COLON_TWO style: sep " " after the system and user turns, sep2 "</s>" after answers.
    prompt = VICUNA_SYSTEM + " "
    for question, answer in zip(turns, [*answers, None]):
        prompt += f"USER: {question} ASSISTANT:"
        if answer is not None:
            prompt += f" {answer}</s>"
    return prompt


def _llama2(turns: list[str], answers: list[str]) -> str:
    # The tokenizer adds the first <s>; later turns open with an explicit one.
    prompt = ""
    for index, (question, answer) in enumerate(zip(turns, [*answers, None])):
        if index == 0:
            prompt += f"[INST] <<SYS>>\n{LLAMA2_SYSTEM}\n<</SYS>>\n\n{question} [/INST]"
        else:
            prompt += f"<s>[INST] {question} [/INST]"
        if answer is not None:
            prompt += f" {answer} </s>"
    return prompt


def _chatml(turns: list[str], answers: list[str]) -> str:
    # SmolLM2's own chat template with its default system message, as a literal string so that
    # prompts do not depend on a tokenizer being loaded (a test checks the two agree).
    prompt = f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n"
    for question, answer in zip(turns, [*answers, None]):
        prompt += f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        if answer is not None:
            prompt += f"{answer}<|im_end|>\n"
    return prompt


_BUILDERS = {"vicuna_v1.1": _vicuna, "llama2": _llama2, "chatml": _chatml}
TEMPLATES = tuple(_BUILDERS)


def build_prompt(template: str, turns: list[str], answers: list[str]) -> str:
    """The prompt answering ``turns[-1]``, with ``answers`` to the earlier turns."""
    builder = _BUILDERS.get(template)
    if builder is None:
        raise HarnessError(f"unknown chat template '{template}'; choose one of {', '.join(TEMPLATES)}")
    if not turns:
        raise HarnessError("a prompt needs at least one user turn")
    if len(answers) != len(turns) - 1:
        raise HarnessError(f"{len(turns)} turns need {len(turns) - 1} earlier answers, got {len(answers)}")
    return builder(list(turns), list(answers))
