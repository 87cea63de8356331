# Verifying a Gatehouse account token in Python with PyJWT (pip install PyJWT).
# GATEHOUSE_JWT_SECRET: the server's secret, exactly as configured (the file's exact bytes).
# GATEHOUSE_ISSUER: the server's `issuer` setting.
import os
import sys

import jwt


def verify_gatehouse_token(token: str) -> dict:
    # Checks the signature, `exp` and `iss`; HS512 only.
    return jwt.decode(
        token,
        os.environ["GATEHOUSE_JWT_SECRET"].encode(),
        algorithms=["HS512"],
        issuer=os.environ["GATEHOUSE_ISSUER"],
        options={"require": ["exp", "iss", "sub"]},
    )  # {"sub": account id, "email", "iat", "exp", "iss", "jti"}


if __name__ == "__main__":
    try:
        print(verify_gatehouse_token(sys.argv[1])["sub"])
    except jwt.InvalidTokenError as e:
        print(f"rejected: {e}", file=sys.stderr)
        sys.exit(1)
