import { deepStrictEqual, ok } from "node:assert/strict";
import { main } from "./demo.ts";
import { logOf, undescribedFlags } from "../internal/test_utils.ts";

Deno.test("deno task demo --help describes every option of its usage line", async () => {
  const { text: help } = await logOf(() => main(["-h"]));
  ok(help.startsWith("usage: deno task demo "), help);
  deepStrictEqual(undescribedFlags(help), [], help);
  ok(help.split("\n").length > 5, help);
});
