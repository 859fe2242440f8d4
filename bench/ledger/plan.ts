/**
 * The traffic of one ledger phase: devices with a distinct id prefix, each sending its messages in order
 * through the device gateway. Every message carries a unique id (`seq`) as the application property
 * `iothub-app-seq` (kept on every archive and dead-letter line) and, when its body is JSON, in the body too.
 * Good state records also carry a field of their own (`s{index}`), so each one can be found in the device's
 * last-known values. Some devices send threshold bursts (three readings above 40 °C) that open alarms.
 */
import { THRESHOLD_RULES, evaluateThreshold, type TelemetryPoint } from '../../src/alerts/rules.js';

export type MessageKind = 'good' | 'burst' | 'non-json' | 'array-scalars' | 'too-large' | 'other-stream';

export interface PlannedMessage {
  seq: string;
  deviceId: string;
  index: number;
  kind: MessageKind;
  body: string;
  /** `iothub-app-*` application properties (without the prefix). */
  properties: Record<string, string>;
  /** Where the message must end up: archived records, dead letters, a state field. */
  expect: { archive: boolean; deadLetter: boolean; state: boolean };
}

export interface PhasePlan {
  prefix: string;
  devices: string[];
  /** Each device's messages, in sending order. */
  messages: Map<string, PlannedMessage[]>;
  /** The anomalies the local rule evaluator must derive from this traffic (device time from `ts`). */
  anomalies: number;
  /** Distinct (device, rule) pairs among them: one alarm each (repeats fold into it). */
  alarms: number;
}

export interface PlanOptions {
  prefix: string;
  devices: number;
  messagesPerDevice: number;
  /** Device time of each device's first message, epoch ms. */
  startMs: number;
}

const BAD_KINDS: readonly MessageKind[] = ['non-json', 'array-scalars', 'too-large', 'other-stream', 'good'];
/** Ingest__MaxRecordBytes in the ledger's run. */
export const MAX_RECORD_BYTES = 64 * 1024;
/** Above MAX_RECORD_BYTES, within IoT Hub's 256 KB device-to-cloud message limit (the gateway refuses more). */
const TOO_LARGE_BYTES = 100 * 1024;
const STEP_MS = 60_000;

function kindOf(device: number, index: number, count: number): MessageKind {
  if (index === count - 1) return BAD_KINDS[device % BAD_KINDS.length] ?? 'good';
  const bursts = device % 2 === 0;
  if (bursts && index >= 1 && index <= 3) return 'burst';
  // A second burst more than one window (5 min of device time) later: a repeat inside the cooldown.
  if (device % 4 === 0 && count >= 12 && index >= 7 && index <= 9) return 'burst';
  return 'good';
}

function message(
  deviceId: string,
  seq: string,
  index: number,
  kind: MessageKind,
  ts: string,
): PlannedMessage {
  const properties: Record<string, string> = { seq };
  const reading = { seq, ts, [`s${index}`]: 1 };
  const planned = (body: string, expect: PlannedMessage['expect']): PlannedMessage => ({
    seq,
    deviceId,
    index,
    kind,
    body,
    properties,
    expect,
  });
  switch (kind) {
    case 'good':
      return planned(JSON.stringify({ ...reading, temperature: 20 + (index % 5) }), {
        archive: true,
        deadLetter: false,
        state: true,
      });
    case 'burst':
      return planned(JSON.stringify({ ...reading, temperature: 45 + index }), {
        archive: true,
        deadLetter: false,
        state: true,
      });
    case 'non-json':
      return planned(`not json ${seq} {`, { archive: false, deadLetter: true, state: false });
    case 'array-scalars':
      return planned(JSON.stringify([{ ...reading, humidity: 40 }, 1, 'two', null]), {
        archive: true,
        deadLetter: true,
        state: true,
      });
    case 'too-large':
      return planned(JSON.stringify({ seq, pad: 'x'.repeat(TOO_LARGE_BYTES) }), {
        archive: false,
        deadLetter: true,
        state: false,
      });
    case 'other-stream':
      properties['stream-id'] = 'audit';
      return planned(JSON.stringify({ seq, ts, action: 'door-opened' }), {
        archive: true,
        deadLetter: false,
        state: false,
      });
  }
}

/** The messages of one phase and the anomalies they must produce. */
export function planPhase(options: PlanOptions): PhasePlan {
  const devices = Array.from(
    { length: options.devices },
    (_, i) => `${options.prefix}-d${String(i).padStart(3, '0')}`,
  );
  const messages = new Map<string, PlannedMessage[]>();
  const points: TelemetryPoint[] = [];
  devices.forEach((deviceId, d) => {
    const list: PlannedMessage[] = [];
    for (let i = 0; i < options.messagesPerDevice; i++) {
      const time = options.startMs + i * STEP_MS;
      const seq = `${deviceId}-m${String(i).padStart(3, '0')}`;
      const planned = message(
        deviceId,
        seq,
        i,
        kindOf(d, i, options.messagesPerDevice),
        new Date(time).toISOString(),
      );
      list.push(planned);
      // What the local rule evaluator sees: every body that is one JSON object.
      try {
        const value = JSON.parse(planned.body) as unknown;
        if (typeof value === 'object' && value !== null && !Array.isArray(value))
          points.push({ deviceId, time, values: value as Record<string, unknown> });
      } catch {
        // not JSON: the evaluator skips it too
      }
    }
    messages.set(deviceId, list);
  });
  const outputs = THRESHOLD_RULES.flatMap((rule) => evaluateThreshold(points, rule));
  const alarms = new Set(outputs.map((o) => `${o.deviceId}|${o.rule}`)).size;
  return { prefix: options.prefix, devices, messages, anomalies: outputs.length, alarms };
}
