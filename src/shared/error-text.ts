/**
 * An error as one line of text for logs and dead letters: `Name: first line of the message`. Never a stack, a
 * request or its headers (SDK errors keep those in other properties), and never throws, whatever was thrown.
 */
export function errorText(error: unknown): string {
  try {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return text.split('\n', 1)[0]?.trim() ?? '';
  } catch {
    return Object.prototype.toString.call(error);
  }
}
