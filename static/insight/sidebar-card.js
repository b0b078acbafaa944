// The Klaviyo card in a helpdesk's sidebar, whichever helpdesk: the helpdesk's own script (zendesk-card.js,
// front-card.js, kustomer-card.js) says which customer is open; this fetches that customer's card from our
// server with the ticket the page carries and shows it. Nothing here knows a helpdesk.
(function () {
  "use strict";

  var root = document.getElementById("klaviyo-card");
  var cardUrl = root.dataset.cardUrl;
  var ticket = root.dataset.ticket;
  var latest = 0;
  var drawn = function () {};

  // the host's word on what to show; it also supersedes any card answer still on its way
  function tell(heading, text) {
    latest += 1;
    say(heading, text);
  }

  function say(heading, text) {
    var title = document.createElement("h1");
    var line = document.createElement("p");
    title.textContent = heading;
    line.className = "muted";
    line.textContent = text;
    root.replaceChildren(title, line);
    root.removeAttribute("aria-busy");
    drawn();
  }

  function refusal(body) {
    try {
      return JSON.parse(body).error || {};
    } catch (error) {
      return {};
    }
  }

  // query: URLSearchParams naming the customer (email, phone or customer_id); onExpired: what the host
  // does when the page's ticket has run out (a Front page reloads, a Zendesk app must be reopened)
  function show(query, onExpired) {
    latest += 1;
    var mine = latest;
    root.setAttribute("aria-busy", "true");
    fetch(cardUrl + "?" + query.toString(), {
      headers: { Authorization: "Bearer " + ticket },
      credentials: "omit",
      cache: "no-store",
    })
      .then(function (response) {
        return response.text().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        if (mine !== latest) {
          return; // the agent moved on: the newer context's answer owns the card
        }
        if (answer.ok) {
          root.innerHTML = answer.body; // our own server's escaped template, from our own origin
          root.removeAttribute("aria-busy");
          drawn();
          return;
        }
        var error = refusal(answer.body);
        if (error.code === "expired" && onExpired) {
          onExpired();
          return;
        }
        say("Klaviyo card unavailable", error.message || "The card could not be loaded.");
      })
      .catch(function () {
        if (mine === latest) {
          say("Klaviyo card unavailable", "The card could not be reached; it tries again when you open another customer.");
        }
      });
  }

  window.KlaviyoSidebarCard = {
    show: show,
    say: tell,
    // called after each drawing, e.g. to tell the host the card's new height
    onDrawn: function (callback) {
      drawn = callback;
    },
  };
})();
