// Copyright 2025 the halo authors. MIT license.
// Worker used by verify_parallel_test.ts: verifies the pairs it receives and posts back
// the decisions.

import { verify } from "../verify/mod.ts";

interface Job {
  pairs: [string, string][];
}

// Typed by hand so that the file also checks together with window-scope files.
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage: (message: unknown) => void;
};

scope.onmessage = (e: MessageEvent<Job>) => {
  const results = e.data.pairs.map(([response, gold]) => {
    const r = verify(response, gold, { budgetMs: 5000 });
    return `${r.correct}:${r.reason}`;
  });
  scope.postMessage(results);
};
