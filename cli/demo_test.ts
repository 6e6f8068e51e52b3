import { deepStrictEqual, ok } from "node:assert/strict";
import { main } from "./demo.ts";
import { undescribedFlags } from "../internal/test_utils.ts";

Deno.test("deno task demo --help describes every option of its usage line", async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    await main(["-h"]);
  } finally {
    console.log = log;
  }
  const help = lines.join("\n");
  ok(help.startsWith("usage: deno task demo "), help);
  deepStrictEqual(undescribedFlags(help), [], help);
  ok(help.split("\n").length > 5, help);
});
