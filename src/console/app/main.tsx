import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { whoAmISchema, type WhoAmIAnswer } from '../../protocol/admin-answers.js';
import { Routes } from '../../protocol/constants.js';
import { ApiError, call, savedToken, saveToken } from './api.js';
import { LiveStrip } from './live.js';
import { ApiReference } from './views/api-reference.js';
import { AuditLog } from './views/audit.js';
import { Fleet } from './views/fleet.js';
import { LineageDetail, Lineages } from './views/lineages.js';
import { ReviewDetail, Reviews } from './views/reviews.js';
import { Telemetry } from './views/telemetry.js';
import { Twoway } from './views/twoway.js';

const NAV: [hash: string, label: string][] = [
  ['#/fleet', 'Fleet'],
  ['#/reviews', 'Schema reviews'],
  ['#/lineages', 'Lineages'],
  ['#/twoway', 'Two-way'],
  ['#/telemetry', 'Telemetry'],
  ['#/audit', 'Audit log'],
  ['#/api', 'API reference'],
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/reviews');
  useEffect(() => {
    const onChange = () => setHash(location.hash || '#/reviews');
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return hash;
}

function SignIn({ onSignedIn }: { onSignedIn: (me: WhoAmIAnswer) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const me = await call(whoAmISchema, Routes.whoami, { token: token.trim() });
      saveToken(token.trim());
      onSignedIn(me);
    } catch (failure) {
      setError(failure instanceof ApiError && failure.status === 401 ? 'That token is not valid (or was revoked).' : String((failure as Error).message));
    }
  };
  return (
    <main id="main" class="signin">
      <h1>Syncline console</h1>
      <form onSubmit={submit}>
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <p class="hint">The server's admin token, or a viewer, operator or admin token from <code>syncline admin token create</code>. It is kept for this tab only.</p>
        <button type="submit">Sign in</button>
        {error && <p role="alert" class="error">{error}</p>}
      </form>
    </main>
  );
}

function Page({ hash, me }: { hash: string; me: WhoAmIAnswer }) {
  const [, section, id] = hash.split('/');
  switch (section) {
    case 'fleet':
      return <Fleet me={me} />;
    case 'lineages':
      return id ? <LineageDetail key={id} id={decodeURIComponent(id)} me={me} /> : <Lineages />;
    case 'twoway':
      return <Twoway />;
    case 'telemetry':
      return <Telemetry />;
    case 'audit':
      return <AuditLog />;
    case 'api':
      return <ApiReference />;
    default:
      // Keyed: a notice about one review (its approval's link to a follow-up) must not stay on the next.
      return id ? <ReviewDetail key={id} id={decodeURIComponent(id)} me={me} /> : <Reviews />;
  }
}

function App() {
  const hash = useHash();
  const [me, setMe] = useState<WhoAmIAnswer | null | undefined>(savedToken() ? undefined : null);
  useEffect(() => {
    if (me !== undefined) return;
    call(whoAmISchema, Routes.whoami).then(setMe, () => {
      saveToken(null);
      setMe(null);
    });
  }, [me]);
  if (me === undefined) return <p aria-busy="true">Loading…</p>;
  if (me === null) return <SignIn onSignedIn={setMe} />;
  const signOut = () => {
    saveToken(null);
    setMe(null);
  };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header>
        <span class="brand">Syncline</span>
        <nav aria-label="Sections">
          {NAV.map(([target, label]) => (
            <a href={target} aria-current={hash.startsWith(target) ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          {me.label} <span class="role">{me.role}</span>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <LiveStrip />
      <main id="main" tabIndex={-1}>
        <Page hash={hash} me={me} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
