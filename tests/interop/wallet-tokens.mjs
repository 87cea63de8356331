// For scripts/fuzz.sh: signs in N fresh ethers wallets through steps 1-2 of Login
// with SelfKey (challenge, EIP-191 signature, answer) as the wallet does, and prints
// their addresses and wallet tokens as a JSON array of {address, token}, so the fuzzer
// reaches the routes behind them.
//   node tests/interop/wallet-tokens.mjs http://127.0.0.1:PORT N
import { Wallet } from 'ethers';

const [base, count = '10'] = process.argv.slice(2);
const root = `${base}/api/v1/selfkey`;
const headers = { origin: 'IDW', 'user-agent': 'SelfKeyIDW/1.4.0' };

async function walletToken() {
  const signer = Wallet.createRandom();
  const key = `0x${signer.signingKey.publicKey.slice(4)}`;
  const challenge = await fetch(`${root}/auth/challenge/${key}`, { headers });
  if (challenge.status !== 200) throw new Error(`challenge: ${challenge.status}`);
  const { jwt } = await challenge.json();
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));
  const signature = await signer.signMessage(claims.challenge);
  const answer = await fetch(`${root}/auth/challenge`, {
    method: 'POST',
    headers: { ...headers, authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({ signature }),
  });
  if (answer.status !== 201) throw new Error(`answer: ${answer.status} ${await answer.text()}`);
  return { address: signer.address.toLowerCase(), token: (await answer.json()).jwt };
}

const tokens = [];
for (let i = 0; i < Number(count); i += 1) tokens.push(await walletToken());
process.stdout.write(JSON.stringify(tokens));
