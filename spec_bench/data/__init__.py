"""Spec-Bench data: questions, categories, chat templates, fetching."""

from spec_bench.data.questions import CATEGORIES, Question, load_questions, select_questions
from spec_bench.data.templates import TEMPLATES, build_prompt

__all__ = ["CATEGORIES", "Question", "TEMPLATES", "build_prompt", "load_questions", "select_questions"]
