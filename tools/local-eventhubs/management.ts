import rhea from 'rhea';
import type { Message } from 'rhea';
import { managementTokenAllows, type SharedAccessKey } from './cbs.js';
import { partitionIndex, type Namespace } from './hubs.js';
import { response } from './request-response.js';

const STRING_ARRAY = 0xa1; // str8-utf8 element constructor: the SDKs expect partition_ids as an AMQP string array

/**
 * Answers a `$management` READ request for `com.microsoft:eventhub` (hub properties) or
 * `com.microsoft:partition` (partition properties), after checking the request's `security_token`.
 */
export function answerManagement(request: Message, namespace: Namespace, key: SharedAccessKey): Message {
  const props = (request.application_properties ?? {}) as Record<string, unknown>;
  const name = typeof props.name === 'string' ? props.name : '';
  if (props.operation !== 'READ') return response(request, 400, `Unsupported $management operation`);
  if (!managementTokenAllows(props.security_token, name, key)) {
    return response(request, 401, 'Unauthorized: missing or invalid security_token');
  }
  const hub = namespace.hub(name);
  if (!hub) return response(request, 404, `The messaging entity '${name}' could not be found.`);
  const t = rhea.types;
  if (props.type === 'com.microsoft:eventhub') {
    return response(request, 200, 'OK', {
      name: hub.name,
      type: 'com.microsoft:eventhub',
      created_at: hub.createdAt,
      partition_count: t.wrap_int(hub.partitions.length),
      partition_ids: t.wrap_array(hub.partitionIds, STRING_ARRAY, undefined),
    });
  }
  if (props.type === 'com.microsoft:partition') {
    const partitionId = typeof props.partition === 'string' ? props.partition : String(props.partition);
    const index = partitionIndex(hub, partitionId);
    const log = index === undefined ? undefined : hub.partitions[index];
    if (!log)
      return response(
        request,
        404,
        `The messaging entity '${hub.name}/Partitions/${partitionId}' could not be found.`,
      );
    const state = log.state();
    return response(request, 200, 'OK', {
      name: hub.name,
      type: 'com.microsoft:partition',
      partition: partitionId,
      begin_sequence_number: t.wrap_long(state.beginSequenceNumber),
      last_enqueued_sequence_number: t.wrap_long(state.lastSequenceNumber),
      last_enqueued_offset: String(state.lastOffset),
      last_enqueued_time_utc: new Date(state.lastEnqueuedTimeMs),
      is_partition_empty: state.isEmpty,
    });
  }
  return response(request, 400, `Unsupported $management type`);
}
