"""Reference renderings of chat templates, made the way Hugging Face `transformers` makes them.

usage: python render_chat_templates.py < cases.json > renderings.json

Input: a JSON list of cases {"template", "messages", "tools", "add_generation_prompt",
"bos_token", "eos_token"}. Output: a JSON list, per case {"text": ...} or {"error": ...}.

The environment copies `transformers.utils.chat_template_utils._compile_jinja_template`
(ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop controls; its `tojson`
filter, `raise_exception` and `strftime_now`) and the call of `render_jinja_template`
(messages, tools, documents=None, add_generation_prompt, the special tokens), so the conformance
test of crates/local compares minijinja with what the models were trained on, without pulling
in transformers itself. The `{% generation %}` tag (AssistantTracker, for training masks) is
left out: chat templates for inference do not use it.
"""

import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def compile_template(source):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def render(case):
    try:
        text = compile_template(case["template"]).render(
            messages=case["messages"],
            tools=case.get("tools"),
            documents=None,
            add_generation_prompt=case["add_generation_prompt"],
            bos_token=case["bos_token"],
            eos_token=case["eos_token"],
        )
        return {"text": text}
    except Exception as e:  # what the template raised is the result: Rust must fail too
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    cases = json.load(sys.stdin)
    json.dump([render(c) for c in cases], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
