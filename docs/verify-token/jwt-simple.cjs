// Verifying a Gatehouse account token in Node with jwt-simple.
// GATEHOUSE_JWT_SECRET: the server's secret, exactly as configured (the file's exact bytes).
// GATEHOUSE_ISSUER: the server's `issuer` setting.
const jwt = require('jwt-simple');

function verifyGatehouseToken(token) {
  // Checks the HS512 signature and `exp` (jwt-simple rejects an expired token);
  // the algorithm is pinned, never taken from the token's header.
  const claims = jwt.decode(token, process.env.GATEHOUSE_JWT_SECRET, false, 'HS512');
  if (claims.iss !== process.env.GATEHOUSE_ISSUER) throw new Error('wrong issuer');
  if (typeof claims.exp !== 'number') throw new Error('no expiry');
  return claims; // { sub: account id, email, email_verified, iat, exp, iss, jti, sid, auth_time }
}

try {
  console.log(verifyGatehouseToken(process.argv[2]).sub);
} catch (e) {
  console.error(`rejected: ${e.message}`);
  process.exit(1);
}
