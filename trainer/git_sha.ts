/**
 * The git commit of the working tree, read from the `.git` directory (no `git` process, so only
 * `--allow-read` is needed), for the `gitSha` of checkpoints.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

async function findGitDir(start: string): Promise<string | null> {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, ".git");
    try {
      const info = await Deno.stat(candidate);
      if (info.isDirectory) return candidate;
      if (info.isFile) {
        // A worktree or submodule: ".git" is a file "gitdir: <path>".
        const text = (await readText(candidate)) ?? "";
        const match = /^gitdir:\s*(.+)\s*$/m.exec(text);
        return match ? resolve(dir, match[1].trim()) : null;
      }
    } catch {
      // Not here; try the parent.
    }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * The commit `HEAD` points at, found by walking up from `start` to the nearest `.git`: a detached
 * `HEAD` holds the sha, otherwise the branch's loose ref or its line in `packed-refs` does.
 *
 * @param start Where to start looking; default the current directory.
 * @returns The 40-hex sha, or `null` outside a repository or when it cannot be read.
 *
 * @example Usage
 * ```ts
 * import { gitSha } from "./git_sha.ts";
 * import { ok } from "node:assert/strict";
 *
 * const sha = await gitSha();
 * ok(sha === null || /^[0-9a-f]{40}$/.test(sha));
 * ```
 */
export async function gitSha(start = "."): Promise<string | null> {
  const gitDir = await findGitDir(start);
  if (gitDir === null) return null;
  const head = (await readText(join(gitDir, "HEAD")))?.trim();
  if (!head) return null;
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const match = /^ref:\s*(\S+)$/.exec(head);
  if (!match) return null;
  const ref = match[1];
  // Worktrees keep their refs in the common directory.
  const common = (await readText(join(gitDir, "commondir")))?.trim();
  const dirs = common ? [gitDir, resolve(gitDir, common)] : [gitDir];
  for (const dir of dirs) {
    const loose = (await readText(join(dir, ref)))?.trim();
    if (loose && /^[0-9a-f]{40}$/.test(loose)) return loose;
    const packed = await readText(join(dir, "packed-refs"));
    if (packed) {
      for (const line of packed.split("\n")) {
        const [sha, name] = line.trim().split(/\s+/);
        if (name === ref && /^[0-9a-f]{40}$/.test(sha)) return sha;
      }
    }
  }
  return null;
}
