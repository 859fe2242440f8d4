import { describe, expect, it } from 'vitest';
import type { Registration } from '../../../tools/local-runtime/event-hubs.js';
import { describeFunctions } from '../../../tools/local-runtime/function-list.js';

const registration = (name: string, binding: Record<string, unknown>): Registration => ({
  metadata: { name, bindings: { trigger: { direction: 'in', ...binding } } },
  callback: () => Promise.resolve(),
});

describe('describeFunctions', () => {
  it('lists HTTP functions with methods and URL first, then the other triggers, as func start does', () => {
    const text = describeFunctions(
      [
        registration('ingestTelemetry', { type: 'eventHubTrigger' }),
        registration('getDevice', { type: 'httpTrigger', route: 'devices/{id}', methods: ['get'] }),
        registration('redeliverAlerts', { type: 'timerTrigger' }),
        registration('ping', { type: 'httpTrigger' }),
      ],
      'http://localhost:7071',
      'api',
    );
    expect(text.split('\n')).toEqual([
      'Functions:',
      '  getDevice: [GET] http://localhost:7071/api/devices/{id}',
      '  ping: [GET,POST] http://localhost:7071/api/ping',
      '  ingestTelemetry: eventHubTrigger',
      '  redeliverAlerts: timerTrigger',
    ]);
  });
});
