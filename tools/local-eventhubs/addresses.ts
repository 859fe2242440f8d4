/** What a link's address names, as the Event Hubs service understands it. */
export type LinkAddress =
  | { kind: 'cbs' }
  | { kind: 'management' }
  | { kind: 'hub'; hub: string }
  | { kind: 'partition'; hub: string; partition: string }
  | { kind: 'consumer'; hub: string; group: string; partition: string }
  | { kind: 'unknown'; path: string };

/**
 * Parses a link address: `$cbs`, `$management`, `<hub>`, `<hub>/Partitions/<id>`,
 * `<hub>/ConsumerGroups/<group>/Partitions/<id>`, with or without a leading `/` or an `amqp(s)://host:port/` or
 * `sb://host/` prefix. Segment names are matched case-insensitively, as the service does.
 */
export function parseAddress(address: string | undefined): LinkAddress {
  const path = entityPath(address ?? '');
  const parts = path.split('/');
  const lower = parts.map((p) => p.toLowerCase());
  if (parts.length === 1 && lower[0] === '$cbs') return { kind: 'cbs' };
  if (lower[lower.length - 1] === '$management') return { kind: 'management' };
  const [hub, , v1, , v2] = parts;
  if (hub === undefined || hub === '') return { kind: 'unknown', path };
  if (parts.length === 1) return { kind: 'hub', hub };
  if (parts.length === 3 && lower[1] === 'partitions' && v1) return { kind: 'partition', hub, partition: v1 };
  if (parts.length === 5 && lower[1] === 'consumergroups' && lower[3] === 'partitions' && v1 && v2) {
    return { kind: 'consumer', hub, group: v1, partition: v2 };
  }
  return { kind: 'unknown', path };
}

/** An address without scheme, host and surrounding slashes (case kept). */
export function entityPath(address: string): string {
  let rest = address.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    const slash = rest.indexOf('/');
    rest = slash < 0 ? '' : rest.slice(slash + 1);
  }
  return rest.replace(/^\/+|\/+$/g, '');
}
