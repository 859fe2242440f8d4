/**
 * The settings `npm run replay` reads: the environment, then local.settings.json, then the sample. A setting
 * that can be given in two forms (a connection string or an identity-based endpoint) is resolved as a group
 * from ONE source: the highest source that names either form decides, so an endpoint set in the environment is
 * never overridden by the sample's local connection string (which would read or write the wrong account).
 */
export type SettingSources = readonly Record<string, string | undefined>[];

const given = (source: Record<string, string | undefined>, name: string) => {
  const value = source[name]?.trim();
  return value ? value : undefined;
};

/** One setting: its value in the first source that has it (empty counts as unset). */
export function settingFrom(sources: SettingSources, name: string): string | undefined {
  for (const source of sources) {
    const value = given(source, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** The first of `names` (in order of preference) set in the highest source that sets any of them. */
export function groupFrom(
  sources: SettingSources,
  names: readonly string[],
): { name: string; value: string } | undefined {
  for (const source of sources) {
    for (const name of names) {
      const value = given(source, name);
      if (value !== undefined) return { name, value };
    }
  }
  return undefined;
}
