/**
 * The simulator's readings: one device's temperature, humidity and pressure, one step per message. Each is a
 * mean-reverting random walk (a discrete Ornstein–Uhlenbeck process) around the device's own baseline, so the
 * readings stay in a band however long a run lasts (a plain random walk drifts without bound: after ~15 minutes
 * at 2 msg/s some devices crossed the 40 °C rule and stayed there). Anomalies are the simulator's `--anomalies`
 * bursts, not drift.
 */
export interface Readings {
  temperature: number;
  humidity: number;
  pressure: number;
  /** The device's baseline temperature, °C: where its walk returns to. */
  baseTemperature: number;
}

/** Pull back towards the baseline per step (a fraction of the distance). */
const REVERSION = 0.02;
const BASE_HUMIDITY = 45;
const BASE_PRESSURE = 1013;

export function initialReadings(random: () => number = Math.random): Readings {
  const baseTemperature = 20 + random() * 5;
  return { temperature: baseTemperature, humidity: BASE_HUMIDITY, pressure: BASE_PRESSURE, baseTemperature };
}

/** The readings of the next message. */
export function nextReadings(r: Readings, random: () => number = Math.random): Readings {
  const noise = (scale: number) => (random() - 0.5) * 2 * scale;
  const revert = (value: number, base: number) => value + REVERSION * (base - value);
  return {
    temperature: revert(r.temperature, r.baseTemperature) + noise(0.3),
    humidity: Math.min(100, Math.max(0, revert(r.humidity, BASE_HUMIDITY) + noise(1))),
    pressure: revert(r.pressure, BASE_PRESSURE) + noise(0.5),
    baseTemperature: r.baseTemperature,
  };
}
