// The demo shop's page. It embeds anshin's hosted card page and listens to
// what it says, from anshin's origin only. The card number never passes
// through here: the shop hears a token, the brand and the last four digits,
// and asks its own server to charge the checkout session.
'use strict';
(function () {
  const root = document.getElementById('shop');
  const anshinOrigin = root.getAttribute('data-anshin-origin');
  const sessionId = root.getAttribute('data-session-id');
  const frame = document.getElementById('anshin-frame');
  const result = document.getElementById('result');
  const events = document.getElementById('events');
  const ja = document.documentElement.lang === 'ja';

  function say(ja_text, en_text) {
    result.textContent = ja ? ja_text : en_text;
  }

  window.addEventListener('message', async (event) => {
    if (event.origin !== anshinOrigin || event.source !== frame.contentWindow) {
      return;
    }
    const m = event.data || {};
    if (typeof m.type !== 'string') {
      return;
    }
    const item = document.createElement('li');
    item.textContent = m.type + (m.status ? ' ' + m.status : '') + (m.code ? ' ' + m.code : '');
    events.appendChild(item);
    document.body.setAttribute('data-last-event', m.type);
    if (m.type === 'anshin:resize' && Number.isFinite(m.height)) {
      frame.style.height = Math.max(160, Math.min(2400, Math.ceil(m.height) + 8)) + 'px';
    } else if (m.type === 'anshin:card_tokenized') {
      say('カードを受け付けました（' + m.brand + ' ' + m.last4 + '）。決済しています…',
        'Card received (' + m.brand + ' ' + m.last4 + '). Charging…');
      try {
        const r = await fetch('/pay', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ session_id: sessionId, card_token: m.card_token }),
        });
        const body = await r.json();
        if (body.status === 'challenge_required') {
          say('カード会社の本人認証をしてください。', 'Your card issuer asks you to authenticate.');
        } else if (!r.ok) {
          say('決済できませんでした（' + (body.code || r.status) + '）', 'The payment failed (' + (body.code || r.status) + ')');
        }
      } catch (_) {
        say('お店のサーバーに接続できませんでした。', 'Could not reach the shop\'s server.');
      }
    } else if (m.type === 'anshin:payment') {
      document.body.setAttribute('data-payment-status', m.status);
      if (m.status === 'authorized' || m.status === 'captured') {
        say('ご注文ありがとうございました（' + m.payment_id + '）。', 'Thank you for your order (' + m.payment_id + ').');
      } else {
        say('お支払いが承認されませんでした（' + (m.decline_code || m.status) + '）。', 'The payment was not approved (' + (m.decline_code || m.status) + ').');
      }
    }
  });
})();
