import assert from "node:assert/strict";
import { compileChatTemplate, resolveChatTemplate } from "./chat_template.ts";

Deno.test("resolveChatTemplate() reads a string or a named template list", () => {
  assert.equal(resolveChatTemplate({ chat_template: "{{ a }}" }), "{{ a }}");
  const list = {
    chat_template: [
      { name: "tool_use", template: "T" },
      { name: "default", template: "D" },
    ],
  };
  assert.equal(resolveChatTemplate(list), "D");
  assert.equal(resolveChatTemplate(list, { name: "tool_use" }), "T");
  assert.equal(resolveChatTemplate({}), null);
  assert.equal(resolveChatTemplate({ chat_template: null }), null);
});

Deno.test("resolveChatTemplate() rejects malformed configs, naming the file", () => {
  assert.throws(
    () =>
      resolveChatTemplate({ chat_template: [{ name: "tool_use", template: "T" }] }, {
        source: "m/c.json",
      }),
    /^TypeError: Cannot load chat template "m\/c\.json": no template named "default" in "chat_template" \(found "tool_use"\)$/,
  );
  assert.throws(
    () => resolveChatTemplate({ chat_template: 3 }, { source: "m/c.json" }),
    /^TypeError: Cannot load chat template "m\/c\.json": "chat_template" must be a string/,
  );
  assert.throws(
    () => resolveChatTemplate([]),
    /Cannot load chat template "tokenizer_config\.json"/,
  );
});

Deno.test("compileChatTemplate() renders variables and names the source in errors", () => {
  const render = compileChatTemplate(
    "{% for m in messages %}[{{ m.role }}] {{ m.content | trim }}\n{% endfor %}" +
      "{% if add_generation_prompt %}[assistant]{% endif %}",
    { source: "x.jinja" },
  );
  const messages = [{ role: "user", content: " hi " }];
  assert.equal(render({ messages, add_generation_prompt: true }), "[user] hi\n[assistant]");
  assert.equal(render({ messages, add_generation_prompt: false }), "[user] hi\n");
  assert.throws(
    () => compileChatTemplate("{% if %}", { source: "x.jinja" }),
    (error: Error) =>
      error instanceof SyntaxError && /^Cannot load chat template "x\.jinja": /.test(error.message),
  );
  const failing = compileChatTemplate("{{ raise_exception('no system role') }}", {
    source: "y.jinja",
  });
  assert.throws(
    () => failing({}),
    /^Error: Cannot render chat template "y\.jinja": .*no system role/,
  );
});
