/**
 * The simulator's readings stay in a band whatever the length of the run (the soak's workload must be
 * stationary): a plain random walk drifted above the 40 °C rule after ~15 minutes at 2 msg/s and kept opening
 * alarms, so the soak measured a change of workload, not memory growth.
 */
import { describe, expect, it } from 'vitest';
import { initialReadings, nextReadings } from '../../../tools/simulated-readings.js';
import { seededRandom } from '../../../tools/seeded-random.js';

describe('simulated readings', () => {
  it('stay in a bounded band over a day of messages at 2 msg/s, for every seed', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed);
      let r = initialReadings(random);
      let [minT, maxT, minP, maxP, minH, maxH] = [
        Infinity,
        -Infinity,
        Infinity,
        -Infinity,
        Infinity,
        -Infinity,
      ];
      for (let i = 0; i < 172_800; i++) {
        r = nextReadings(r, random);
        [minT, maxT] = [Math.min(minT, r.temperature), Math.max(maxT, r.temperature)];
        [minP, maxP] = [Math.min(minP, r.pressure), Math.max(maxP, r.pressure)];
        [minH, maxH] = [Math.min(minH, r.humidity), Math.max(maxH, r.humidity)];
      }
      // Never near the 40 °C threshold on its own (anomalies are the simulator's --anomalies bursts).
      expect(minH).toBeGreaterThanOrEqual(0);
      expect(maxH).toBeLessThanOrEqual(100);
      expect(maxT).toBeLessThan(35);
      expect(minT).toBeGreaterThan(5);
      expect(maxP - minP).toBeLessThan(40);
    }
  });
});
