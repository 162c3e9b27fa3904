// anshin's hosted card page. Served from anshin only, with Subresource
// Integrity, under a Content-Security-Policy that allows nothing else.
//
// What it does with the card: checks it as the shopper types (brand, Luhn,
// expiry, security code length), sends it once with fetch to
// POST /checkout/{id}/card on anshin's own origin, and forgets the fields.
// It never writes card data to the console, storage, a cookie or a URL, and
// the inputs have no `name`, so even a form submission without this script
// carries nothing. The shop's page (the parent window) hears only the token,
// brand and last four digits, by postMessage to the session's allowed origin
// and to no other.
'use strict';
(function () {
  const root = document.getElementById('anshin-checkout');
  if (!root) {
    return;
  }
  const sessionId = root.getAttribute('data-session-id');
  const allowedOrigin = root.getAttribute('data-allowed-origin');
  const base = '/checkout/' + encodeURIComponent(sessionId);
  const POLL_MS = 1000;
  // The session lives 15 minutes by default; polling stops a little after.
  const POLL_LIMIT_MS = 20 * 60 * 1000;

  const form = document.getElementById('card-form');
  const number = document.getElementById('card-number');
  const brandOut = document.getElementById('card-brand');
  const exp = document.getElementById('card-exp');
  const cvc = document.getElementById('card-cvc');
  const name = document.getElementById('card-name');
  const pay = document.getElementById('pay');
  const statusOut = document.getElementById('status');
  const alertOut = document.getElementById('alert');
  const challengeBox = document.getElementById('challenge-box');
  const challengeFrame = document.getElementById('challenge-frame');
  const challengeTitle = document.getElementById('challenge-title');

  // Texts come from the server, in the session's language.
  function msg(key, values) {
    let text = root.getAttribute('data-msg-' + key) || key;
    if (values) {
      for (const k of Object.keys(values)) {
        text = text.split('{' + k + '}').join(String(values[k]));
      }
    }
    return text;
  }

  // To the shop's page only, and only at the session's allowed origin: a
  // page of any other origin that frames this one hears nothing.
  function tellParent(message) {
    if (window.parent !== window && allowedOrigin) {
      window.parent.postMessage(message, allowedOrigin);
    }
  }

  // ---- Parsing what the shopper types -----------------------------------

  // Full-width digits become ASCII; spaces (also the ideographic space) and
  // hyphens of every width are dropped. `bad` says whether anything else was
  // there.
  const SEPARATORS = /[\s\u3000\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uFF0D\u30FC]/g;
  function foldDigits(text) {
    return text.replace(/[\uFF10-\uFF19]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xff10 + 48));
  }
  function digitsOf(text) {
    const folded = foldDigits(text).replace(SEPARATORS, '');
    return { digits: folded.replace(/\D/g, ''), bad: /\D/.test(folded) };
  }

  // The brand table of anshin-crypto's Brand::detect (crates/anshin-crypto/src/pan.rs),
  // by prefix only, so the brand shows as soon as the first digits tell it.
  const BRANDS = [
    { id: 'visa', label: 'Visa', test: (p) => p(1) === 4, lengths: [13, 16, 19], cvc: 3 },
    { id: 'mastercard', label: 'Mastercard', test: (p) => between(p(2), 51, 55) || between(p(4), 2221, 2720), lengths: [16], cvc: 3 },
    { id: 'amex', label: 'American Express', test: (p) => p(2) === 34 || p(2) === 37, lengths: [15], cvc: 4, groups: [4, 6, 5] },
    { id: 'jcb', label: 'JCB', test: (p) => between(p(4), 3528, 3589), lengths: [16, 17, 18, 19], cvc: 3 },
    { id: 'diners', label: 'Diners Club', test: (p) => between(p(3), 300, 305) || p(4) === 3095 || p(2) === 36 || p(2) === 38 || p(2) === 39, lengths: [14, 15, 16, 17, 18, 19], cvc: 3, groups: [4, 6, 4] },
    { id: 'discover', label: 'Discover', test: (p) => p(4) === 6011 || between(p(6), 622126, 622925) || between(p(3), 644, 649) || p(2) === 65, lengths: [16, 17, 18, 19], cvc: 3 },
    { id: 'unionpay', label: 'UnionPay', test: (p) => p(2) === 62 || p(2) === 81, lengths: [16, 17, 18, 19], cvc: 3 },
  ];
  function between(v, lo, hi) {
    return v !== null && v >= lo && v <= hi;
  }
  function brandOf(digits) {
    const prefix = (n) => (digits.length >= n ? Number(digits.slice(0, n)) : null);
    return BRANDS.find((b) => b.test(prefix)) || null;
  }

  function luhnValid(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) {
          d -= 9;
        }
      }
      sum += d;
    }
    return digits.length > 0 && sum % 10 === 0;
  }

  function grouped(digits, brand) {
    const groups = (brand && brand.groups) || [4, 4, 4, 4, 3];
    const parts = [];
    let at = 0;
    for (const g of groups) {
      if (at >= digits.length) {
        break;
      }
      parts.push(digits.slice(at, at + g));
      at += g;
    }
    if (at < digits.length) {
      parts.push(digits.slice(at));
    }
    return parts.join(' ');
  }

  // ---- Field checks ------------------------------------------------------

  function numberState() {
    const { digits, bad } = digitsOf(number.value);
    const brand = brandOf(digits);
    let error = null;
    let complete = false;
    if (bad) {
      error = 'number_invalid';
    } else if (digits.length === 0) {
      error = 'number_incomplete';
    } else if (digits.length >= 12 && !brand) {
      error = 'brand_unsupported';
    } else if (brand && brand.lengths.includes(digits.length)) {
      // A length the brand's cards have (more digits may still follow on
      // brands with several lengths).
      complete = true;
      error = luhnValid(digits) ? null : 'number_invalid';
    } else if (brand && digits.length > brand.lengths[brand.lengths.length - 1]) {
      error = 'number_invalid';
    } else if (digits.length > 19) {
      error = 'number_invalid';
    } else {
      error = 'number_incomplete';
    }
    return { digits, brand, error, complete };
  }

  function expState() {
    const text = foldDigits(exp.value).replace(/[\s\u3000]/g, '');
    const m = /^(\d{1,2})[/\uFF0F\-]?(\d{2}|\d{4})$/.exec(text) || /^(\d{2})(\d{2})$/.exec(text);
    if (!m) {
      return { error: 'exp_invalid' };
    }
    const month = Number(m[1]);
    const year = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
    if (month < 1 || month > 12 || year < 2000 || year > 2099) {
      return { error: 'exp_invalid' };
    }
    const now = new Date();
    const current = now.getFullYear() * 12 + now.getMonth();
    if (year * 12 + (month - 1) < current) {
      return { error: 'exp_past', month, year };
    }
    return { error: null, month, year };
  }

  function cvcLength() {
    const brand = brandOf(digitsOf(number.value).digits);
    return brand ? brand.cvc : null;
  }

  function cvcState() {
    const { digits, bad } = digitsOf(cvc.value);
    const want = cvcLength();
    const ok = !bad && (want ? digits.length === want : digits.length === 3 || digits.length === 4);
    return { digits, error: ok ? null : 'cvc_invalid', want: want || 3 };
  }

  function nameState() {
    const value = name.value.trim().replace(/\s+/g, ' ');
    return { value, error: value.length === 0 || value.length > 100 ? 'name_invalid' : null };
  }

  function show(input, error, values) {
    const out = document.getElementById(input.id + '-error');
    if (error) {
      input.setAttribute('aria-invalid', 'true');
      out.textContent = msg(error, values);
    } else {
      input.setAttribute('aria-invalid', 'false');
      out.textContent = '';
    }
  }

  // ---- As the shopper types ----------------------------------------------

  let composing = false;

  function reformatNumber() {
    const caret = number.selectionStart === null ? number.value.length : number.selectionStart;
    const digitsBeforeCaret = digitsOf(number.value.slice(0, caret)).digits.length;
    const { digits, brand } = numberState();
    const text = grouped(digits.slice(0, 19), brand);
    if (text !== number.value) {
      number.value = text;
      let pos = 0;
      let seen = 0;
      while (pos < text.length && seen < digitsBeforeCaret) {
        if (text[pos] !== ' ') {
          seen++;
        }
        pos++;
      }
      if (document.activeElement === number) {
        number.setSelectionRange(pos, pos);
      }
    }
  }

  function onNumberInput() {
    if (!composing) {
      reformatNumber();
    }
    const state = numberState();
    brandOut.textContent = state.brand ? state.brand.label : '';
    cvc.maxLength = state.brand ? state.brand.cvc : 4;
    // Say a number is wrong as soon as it is complete; say it is short only on leaving the field.
    if (state.complete || (state.error && state.error !== 'number_incomplete')) {
      show(number, state.error);
    } else if (number.getAttribute('aria-invalid') === 'true' && !state.error) {
      show(number, null);
    }
    if (cvc.value) {
      const c = cvcState();
      if (!c.error) {
        show(cvc, null);
      }
    }
  }

  number.addEventListener('compositionstart', () => {
    composing = true;
  });
  number.addEventListener('compositionend', () => {
    composing = false;
    onNumberInput();
  });
  number.addEventListener('input', onNumberInput);
  number.addEventListener('blur', () => {
    reformatNumber();
    if (number.value) {
      show(number, numberState().error);
    }
  });

  exp.addEventListener('input', (event) => {
    if (event.isComposing || (event.inputType && !event.inputType.startsWith('insert'))) {
      return;
    }
    const { digits, bad } = digitsOf(exp.value.replace(/[/\uFF0F]/g, ''));
    if (bad) {
      return;
    }
    let d = digits;
    if (d.length === 1 && d > '1') {
      d = '0' + d;
    }
    exp.value = d.length > 2 ? d.slice(0, 2) + '/' + d.slice(2, 6) : d;
    if (exp.getAttribute('aria-invalid') === 'true' && !expState().error) {
      show(exp, null);
    }
  });
  exp.addEventListener('blur', () => {
    if (exp.value) {
      show(exp, expState().error);
    }
  });

  cvc.addEventListener('input', () => {
    const { digits } = digitsOf(cvc.value);
    if (cvc.value !== digits) {
      cvc.value = digits;
    }
    if (cvc.getAttribute('aria-invalid') === 'true' && !cvcState().error) {
      show(cvc, null);
    }
  });
  cvc.addEventListener('blur', () => {
    if (cvc.value) {
      const c = cvcState();
      show(cvc, c.error, { n: c.want });
    }
  });

  name.addEventListener('blur', () => {
    if (name.value) {
      show(name, nameState().error);
    }
  });
  name.addEventListener('input', () => {
    if (name.getAttribute('aria-invalid') === 'true' && !nameState().error) {
      show(name, null);
    }
  });

  // ---- Sending the card ----------------------------------------------------

  const FIELD_OF_CODE = {
    card_invalid: [number, 'number_invalid'],
    card_expired: [exp, 'exp_past'],
    cvc_invalid: [cvc, 'cvc_invalid'],
    holder_name_invalid: [name, 'name_invalid'],
  };

  function setBusy(busy) {
    pay.disabled = busy;
    for (const input of [number, exp, cvc, name]) {
      input.readOnly = busy;
    }
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function fail(code) {
    alertOut.textContent = msg(code);
    tellParent({ type: 'anshin:error', code });
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alertOut.textContent = '';
    const n = numberState();
    const e = expState();
    const c = cvcState();
    const h = nameState();
    show(number, n.error);
    show(exp, e.error);
    show(cvc, c.error, { n: c.want });
    show(name, h.error);
    const firstBad = [
      [number, n.error],
      [exp, e.error],
      [cvc, c.error],
      [name, h.error],
    ].find(([, error]) => error);
    if (firstBad) {
      alertOut.textContent = msg('fix_errors');
      firstBad[0].focus();
      return;
    }
    setBusy(true);
    statusOut.textContent = msg('submitting');
    let response;
    try {
      response = await fetch(base + '/card', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          number: n.digits,
          exp_month: e.month,
          exp_year: e.year,
          holder_name: h.value,
          cvc: c.digits,
        }),
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
      });
    } catch (_) {
      setBusy(false);
      statusOut.textContent = '';
      fail('network');
      return;
    }
    // The security code is never kept in the page once sent.
    cvc.value = '';
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.ok && body && body.card_token) {
      number.value = (body.brand ? labelOf(body.brand) + ' ' : '') + '\u2022\u2022\u2022\u2022 ' + body.last4;
      for (const input of [number, exp, cvc, name]) {
        input.disabled = true;
      }
      pay.disabled = true;
      form.setAttribute('aria-busy', 'false');
      statusOut.textContent = msg('card_accepted', { card: number.value });
      tellParent({
        type: 'anshin:card_tokenized',
        session_id: sessionId,
        card_token: body.card_token,
        brand: body.brand,
        last4: body.last4,
      });
      startPolling();
      return;
    }
    setBusy(false);
    statusOut.textContent = '';
    const code = (body && body.error && body.error.code) || 'failed';
    const field = FIELD_OF_CODE[code];
    if (field) {
      show(field[0], field[1], { n: cvcState().want });
      alertOut.textContent = msg('fix_errors');
      field[0].focus();
      tellParent({ type: 'anshin:error', code });
    } else if (code === 'session_expired' || code === 'session_used' || code === 'rate_limited') {
      if (code !== 'rate_limited') {
        setBusy(true);
      }
      fail(code);
    } else {
      fail('failed');
    }
  });

  function labelOf(brandId) {
    const b = BRANDS.find((x) => x.id === brandId);
    return b ? b.label : '';
  }

  // ---- The payment: polling, 3-D Secure, result -------------------------------

  let timer = null;
  let finished = false;
  let challengeUrl = null;
  let pollingSince = 0;

  function startPolling() {
    pollingSince = Date.now();
    schedule(0);
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (!finished) {
      timer = setTimeout(poll, ms);
    }
  }

  async function poll() {
    if (finished) {
      return;
    }
    if (Date.now() - pollingSince > POLL_LIMIT_MS) {
      finish('failed', null);
      return;
    }
    let state = null;
    try {
      const r = await fetch(base + '/status', { cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
      if (r.status === 404 || r.status === 410) {
        finished = true;
        hideChallenge();
        fail('session_expired');
        return;
      }
      if (r.ok) {
        state = await r.json();
      }
    } catch (_) {
      state = null;
    }
    if (state) {
      handle(state);
    }
    schedule(POLL_MS);
  }

  function handle(state) {
    const p = state.payment;
    if (!p) {
      if (state.status === 'expired') {
        finished = true;
        fail('session_expired');
      }
      return;
    }
    if (p.status === 'challenge_required' && p.challenge_url) {
      showChallenge(p.challenge_url);
      return;
    }
    if (['authorized', 'captured', 'declined', 'failed'].includes(p.status)) {
      finish(p.status, p);
    }
  }

  function showChallenge(url) {
    if (challengeUrl === url) {
      return;
    }
    let parsed;
    try {
      parsed = new URL(url);
    } catch (_) {
      return;
    }
    if (parsed.protocol !== 'https:') {
      return;
    }
    challengeUrl = url;
    challengeFrame.src = parsed.href;
    challengeBox.hidden = false;
    statusOut.textContent = msg('challenge');
    challengeTitle.setAttribute('tabindex', '-1');
    challengeTitle.focus();
    tellParent({ type: 'anshin:challenge' });
  }

  function hideChallenge() {
    challengeBox.hidden = true;
    challengeFrame.removeAttribute('src');
  }

  function finish(status, p) {
    finished = true;
    clearTimeout(timer);
    hideChallenge();
    if (status === 'authorized' || status === 'captured') {
      statusOut.textContent = msg('paid');
      statusOut.classList.add('done');
    } else if (status === 'declined') {
      statusOut.textContent = '';
      alertOut.textContent = msg('declined', { code: (p && p.decline_code) || '' });
    } else {
      statusOut.textContent = '';
      alertOut.textContent = msg('failed');
    }
    tellParent({
      type: 'anshin:payment',
      session_id: sessionId,
      payment_id: p ? p.id : null,
      status,
      decline_code: p ? p.decline_code || null : null,
    });
  }

  // The challenge ends on anshin's 3ds-return page inside the challenge frame;
  // it tells us so, and we read the result from anshin at once.
  window.addEventListener('message', (event) => {
    if (event.origin !== window.location.origin || event.source !== challengeFrame.contentWindow) {
      return;
    }
    if (event.data && event.data.type === 'anshin:3ds_return') {
      challengeBox.hidden = true;
      statusOut.textContent = msg('checking');
      schedule(0);
    }
  });

  // ---- Size and readiness ----------------------------------------------------

  if (typeof ResizeObserver === 'function') {
    let last = 0;
    new ResizeObserver(() => {
      const height = Math.ceil(root.getBoundingClientRect().height);
      if (height !== last) {
        last = height;
        tellParent({ type: 'anshin:resize', height });
      }
    }).observe(root);
  }

  pay.disabled = false;
  tellParent({ type: 'anshin:ready' });
})();
