/**
 * The framework's public API object (framework/api.ts), handed to an external plugin package
 * whose default export is a function, so the package computes with the host's copy of the
 * framework. api.ts is the facade above every layer, so nothing in plugins/ may import it:
 * api.ts provides itself here when it is first loaded (every entry point loads it: the
 * `rass` binary through the built-in packages, library users through the package's main).
 */
let hostApi: object | undefined;

export function provideHostApi(api: object): void {
  hostApi = api;
}

export function hostApiOrThrow(): object {
  if (hostApi === undefined) throw new Error('internal: framework/api.ts was not loaded, so an external plugin package cannot be given the public API');
  return hostApi;
}
