import { parseArgs } from "node:util";

/** Prints a usage error and exits with status 2, as command-line tools do. */
export function usage(message: string, help: string): never {
  console.error(`error: ${message}\n\n${help}`);
  process.exit(2);
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

/**
 * Strict argument parsing: an unknown flag is an error, not silently ignored.
 * `--help` (or `-h`) prints `help` and exits 0.
 */
export function parse<O extends Options>(options: O, help: string, allowPositionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ args: Bun.argv.slice(2), options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals });
  } catch (error) {
    usage((error as Error).message, help);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    console.log(help);
    process.exit(0);
  }
  return parsed;
}
