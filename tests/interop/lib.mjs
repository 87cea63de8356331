// Shared by the interop tests: where the server is and how to talk to it.
import { randomBytes } from 'node:crypto';

export const base = process.env.GATEHOUSE_URL;
export const secret = process.env.GATEHOUSE_JWT_SECRET;
if (!base || !secret) {
  throw new Error('GATEHOUSE_URL and GATEHOUSE_JWT_SECRET must be set (scripts/interop.sh sets them)');
}

export function uniqueEmail() {
  return `interop-${randomBytes(6).toString('hex')}@example.com`;
}

/** POSTs JSON; returns the status, headers and parsed body (null when empty). */
export async function post(path, body, headers = {}) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}
