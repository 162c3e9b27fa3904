// The page the issuer's 3-D Secure challenge returns to, inside the hosted
// page's challenge iframe. It only tells the hosted page (its parent, on
// anshin's own origin) that the challenge is over; the hosted page then reads
// the payment's status from anshin. Nothing is sent anywhere else.
'use strict';
(function () {
  if (window.parent !== window) {
    window.parent.postMessage({ type: 'anshin:3ds_return' }, window.location.origin);
  }
})();
