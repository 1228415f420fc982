import { parseArgs } from "node:util";

/** Prints a usage error and exits with status 2, as command-line tools do. */
export function usage(message: string, help: string): never {
  console.error(`error: ${message}\n\n${help}`);
  process.exit(2);
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

/** Strict argument parsing: an unknown flag is an error, not silently ignored. */
export function parse<O extends Options>(options: O, help: string, allowPositionals = false) {
  try {
    return parseArgs({ args: Bun.argv.slice(2), options, strict: true, allowPositionals });
  } catch (error) {
    usage((error as Error).message, help);
  }
}
