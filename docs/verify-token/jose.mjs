// Verifying a Gatehouse account token in Node with jose.
// GATEHOUSE_JWT_SECRET: the server's secret, exactly as configured (the file's exact bytes).
// GATEHOUSE_ISSUER: the server's `issuer` setting.
import { jwtVerify } from 'jose';

const key = new TextEncoder().encode(process.env.GATEHOUSE_JWT_SECRET);

async function verifyGatehouseToken(token) {
  // Checks the signature, `exp` and `iss`; HS512 only.
  const { payload } = await jwtVerify(token, key, {
    algorithms: ['HS512'],
    issuer: process.env.GATEHOUSE_ISSUER,
    requiredClaims: ['exp', 'sub'],
  });
  return payload; // { sub: account id, email, email_verified, iat, exp, iss, jti, sid, auth_time }
}

try {
  console.log((await verifyGatehouseToken(process.argv[2])).sub);
} catch (e) {
  console.error(`rejected: ${e.code ?? e.message}`);
  process.exit(1);
}
