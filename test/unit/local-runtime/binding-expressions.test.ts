import { afterEach, describe, expect, it } from 'vitest';
import {
  assertBindingSettings,
  resolveBindingExpression,
} from '../../../tools/local-runtime/binding-expressions.js';
import { startEventHubTrigger, type Registration } from '../../../tools/local-runtime/event-hubs.js';
import { startTimers } from '../../../tools/local-runtime/timers.js';

// Issue 15, item 2.3: `%Setting%` binding expressions resolve from app settings only, and the host does not index
// a function whose expression names a missing setting ("The 'f' function is in error: '%X%' does not resolve to a
// value."). The embedded runtime used to substitute '' and serve the function anyway.

const eventHubRegistration = (name: string, binding: Record<string, unknown>): Registration => ({
  metadata: {
    name,
    bindings: {
      trigger: { type: 'eventHubTrigger', direction: 'in', cardinality: 'many', ...binding },
    },
  },
  callback: () => Promise.resolve(),
});

const running: { stop: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

describe('%Setting% binding expressions', () => {
  it('resolves each %Name% from the app settings', () => {
    expect(resolveBindingExpression('%Hub%-%Group%', { Hub: 'events', Group: 'ingest' }, 'f')).toBe(
      'events-ingest',
    );
    expect(resolveBindingExpression('plain', {}, 'f')).toBe('plain');
  });

  it('fails naming the function and the setting when a setting is missing or empty, as the host does', () => {
    expect(() => resolveBindingExpression('%Missing%', {}, 'ingestTelemetry')).toThrow(
      "The 'ingestTelemetry' function is in error: '%Missing%' does not resolve to a value.",
    );
    expect(() => resolveBindingExpression('%Empty%', { Empty: '' }, 'f')).toThrow(/'%Empty%'/);
  });

  it('checks every binding of every registration before anything starts, naming all the missing settings', () => {
    const registrations = [
      eventHubRegistration('ingestTelemetry', { eventHubName: '%HubA%', consumerGroup: '%GroupA%' }),
      eventHubRegistration('notifyAnomalies', { eventHubName: '%HubB%', consumerGroup: 'notify' }),
    ];
    expect(() => {
      assertBindingSettings(registrations, { HubA: 'a', HubB: 'b', GroupA: 'g' });
    }).not.toThrow();
    let message = '';
    try {
      assertBindingSettings(registrations, { HubA: 'a' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(
      "The 'ingestTelemetry' function is in error: '%GroupA%' does not resolve to a value.",
    );
    expect(message).toContain(
      "The 'notifyAnomalies' function is in error: '%HubB%' does not resolve to a value.",
    );
  });

  it('an Event Hub trigger whose hub name setting is missing does not start (it used to read hub "")', async () => {
    // Refused before any client is made: the connection setting is not even looked at.
    await expect(
      startEventHubTrigger(eventHubRegistration('t', { eventHubName: '%HubName%', consumerGroup: 'cg' }), {
        settings: {},
        maxBatch: 10,
        log: () => undefined,
      }),
    ).rejects.toThrow("The 't' function is in error: '%HubName%' does not resolve to a value.");
  });

  it('a timer whose %Schedule% setting is missing does not start', () => {
    const registration = {
      metadata: {
        name: 'tick',
        bindings: { trigger: { type: 'timerTrigger', direction: 'in', schedule: '%Schedule%' } },
      },
      callback: () => Promise.resolve(),
    };
    expect(() => {
      running.push(startTimers([registration], { settings: {}, log: () => undefined }));
    }).toThrow("The 'tick' function is in error: '%Schedule%' does not resolve to a value.");
  });
});
