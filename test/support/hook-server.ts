import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A provisioning webhook on loopback: answers 204, records every body, holds a device's calls on request. */
export interface HookServer {
  url: string;
  /** Every body received, as text. */
  bodies: string[];
  /** Holds the next `device.provisioned` call for `deviceId`; resolves once it arrived (bounded by `ms`). */
  hold(deviceId: string, ms: number): Promise<void>;
  /** Answers the held call for `deviceId`. */
  release(deviceId: string): void;
  stop(): Promise<void>;
}

export async function startHookServer(): Promise<HookServer> {
  const bodies: string[] = [];
  const holds = new Map<string, { arrived: () => void; release?: () => void }>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      const event = JSON.parse(body) as { event?: string; deviceId?: string };
      const hold = event.event === 'device.provisioned' ? holds.get(event.deviceId ?? '') : undefined;
      const answer = () => {
        res.writeHead(204).end();
      };
      if (hold) {
        hold.release = answer;
        hold.arrived();
      } else answer();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/hook`,
    bodies,
    hold: (deviceId, ms) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`No hook call for ${deviceId} within ${String(ms)} ms.`));
        }, ms);
        holds.set(deviceId, {
          arrived: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
    release: (deviceId) => {
      const hold = holds.get(deviceId);
      holds.delete(deviceId);
      hold?.release?.();
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}
