/**
 * `%Name%` binding expressions, resolved as the Functions host does: from the app settings only. The host does
 * not index a function whose expression names a missing setting ("The 'f' function is in error: '%Name%' does
 * not resolve to a value."); the runtime refuses to start instead of serving it with an empty string.
 */

/** A registration's binding metadata, as `@azure/functions-core` receives it. */
interface WithBindings {
  metadata: { name: string; bindings: Record<string, Record<string, unknown>> };
}

const EXPRESSION = /%([^%]+)%/g;

/** The host's indexing error for one unresolved expression. */
const unresolved = (functionName: string, name: string) =>
  `The '${functionName}' function is in error: '%${name}%' does not resolve to a value.`;

/** Names referenced by `%…%` in `value` whose setting is missing or empty. */
function missingNames(value: string, settings: Record<string, string>): string[] {
  return [...value.matchAll(EXPRESSION)].flatMap(([, name = '']) =>
    (settings[name] ?? '') === '' ? [name] : [],
  );
}

/** `value` with every `%Name%` replaced by its app setting; throws the host's error naming a missing one. */
export function resolveBindingExpression(
  value: unknown,
  settings: Record<string, string>,
  functionName: string,
): string {
  const text = String(value);
  const [missing] = missingNames(text, settings);
  if (missing !== undefined) throw new Error(unresolved(functionName, missing));
  return text.replace(EXPRESSION, (_m, name: string) => settings[name] ?? '');
}

/**
 * Checks every string of every binding of every registration, as the host's indexing does, before anything
 * starts; throws one error naming every function and setting that does not resolve.
 */
export function assertBindingSettings(
  registrations: readonly WithBindings[],
  settings: Record<string, string>,
): void {
  const problems: string[] = [];
  for (const { metadata } of registrations) {
    for (const binding of Object.values(metadata.bindings)) {
      for (const value of Object.values(binding)) {
        if (typeof value !== 'string') continue;
        for (const name of missingNames(value, settings)) problems.push(unresolved(metadata.name, name));
      }
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}
