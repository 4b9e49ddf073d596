// Tools-only dependencies. The CLI's ping, bench and demo (hdr-histogram-js,
// cli-progress) and `replay --trace` (@wasmer/wasi, through Core.debugCore) use
// packages that a library consumer does not get: they are devDependencies of
// nexio, loaded where they are used. A missing one is an error that names the
// package and the command that installs it; the library never loads them.

/** A tool dependency is not installed. */
export class MissingToolError extends Error {
  override readonly name = 'MissingToolError';
  readonly code = 'NEXIO_ERR_MISSING_TOOL';
  constructor(readonly packageName: string, what: string) {
    super(`${what} needs ${packageName}, which nexio does not install for library use: npm install ${packageName}`);
  }
}

function missing(e: unknown, pkg: string): boolean {
  const err = e as NodeJS.ErrnoException;
  return err?.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${pkg}'`);
}

/** require(pkg), or MissingToolError naming `what` needs it. */
export function requireTool<T>(pkg: string, what: string): T {
  try {
    return require(pkg) as T;
  } catch (e) {
    if (missing(e, pkg)) throw new MissingToolError(pkg, what);
    throw e;
  }
}

/** require(pkg), or undefined when it is not installed. */
export function optionalTool<T>(pkg: string): T | undefined {
  try {
    return require(pkg) as T;
  } catch (e) {
    if (missing(e, pkg)) return undefined;
    throw e;
  }
}

/** Throws MissingToolError unless pkg can be found (checked before a command starts its work). */
export function checkTool(pkg: string, what: string): void {
  try {
    require.resolve(pkg);
  } catch (e) {
    if (missing(e, pkg)) throw new MissingToolError(pkg, what);
    throw e;
  }
}
